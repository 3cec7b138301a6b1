"""/v1/prices: the validated BTC price per currency, read from what the refresh job
stored (a request never waits on a provider)."""
from __future__ import annotations

from flask_smorest import Blueprint

from app.auth.device import signed
from app.deps import deps
from app.errors import ApiError
from app.extensions import db
from app.price_schemas import CurrencyQuerySchema, PriceSchema
from prices import store
from store.base import utcnow

bp = Blueprint("prices", __name__, url_prefix="/v1", description="BTC prices")


def requested_currency(query: dict, *, required: bool = False) -> str | None:
    """The `currency` a request asked for, checked against PRICE_CURRENCIES (400
    `unsupported_currency` otherwise). None when not given (and not required)."""
    configured = deps().settings.price_currencies
    currency = query.get("currency")
    if currency is None:
        if required and configured:
            return configured[0]
        return None
    if currency not in configured:
        raise ApiError(f"{currency} is not priced here (one of {', '.join(configured) or 'none'})",
                       code="unsupported_currency", details={"supported": list(configured)})
    return currency


@bp.route("/prices", methods=["GET"])
@signed
@bp.arguments(CurrencyQuerySchema, location="query")
@bp.response(200, PriceSchema)
@bp.alt_response(503, description="No price is known for the currency (`price_unavailable`)")
def get_price(query):
    """The price of 1 BTC in `currency` (default: the first of PRICE_CURRENCIES): the
    median of the providers' fresh, agreeing answers, its sources, `as_of` and whether it
    is `stale` (older than PRICE_MAX_AGE)."""
    currency = requested_currency(query, required=True)
    row = store.current_row(db.session, currency) if currency else None
    rate = store.rate(db.session, currency, utcnow()) if currency else None
    if rate is None:
        raise ApiError(f"no {currency} price is known yet", code="price_unavailable", status=503,
                       details={"problem": row.problem if row is not None else "never_refreshed"},
                       headers={"Retry-After": "60"})
    return {"currency": currency, "price": row.price, "as_of": rate.as_of, "stale": rate.stale,
            "sources": row.sources, "discarded": row.discarded, "checked_at": row.checked_at,
            "problem": row.problem}
