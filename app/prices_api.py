"""/v1/prices: the validated BTC price per currency, read from what the refresh job
stored (a request never waits on a provider)."""
from __future__ import annotations

from flask_smorest import Blueprint

from app.auth.device import signed
from app.errors import ApiError
from app.extensions import db
from app.fiat import requested_currency
from app.price_schemas import CurrencyQuerySchema, PriceSchema
from app.schemas import ErrorSchema
from prices import store
from store.base import utcnow

bp = Blueprint("prices", __name__, url_prefix="/v1", description="BTC prices")


@bp.route("/prices", methods=["GET"])
@signed
@bp.arguments(CurrencyQuerySchema, location="query")
@bp.response(200, PriceSchema)
@bp.alt_response(503, schema=ErrorSchema, description="No price is known for the currency (`price_unavailable`)")
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
