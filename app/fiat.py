"""The `fiat` object next to satoshi amounts in API responses (balances, history), added
when the request asks for a currency (`?currency=USD`). A thin layer over what the
account services return: it never changes the satoshi fields, and the `fiat` key is
absent (never zero) when no price is known.

- balance: `value` is confirmed + trusted pending at the current validated price (with
  `stale` when that price is older than PRICE_MAX_AGE);
- history: each entry's `amount_sat` at the daily price of the entry's UTC day (`time`).
"""
from __future__ import annotations

import datetime as dt

from app.deps import deps
from app.errors import ApiError
from prices import store
from prices.money import Rate, format_price, sat_to_fiat


def check_priced(currencies, *, need_source: bool = False) -> None:
    """400 `unsupported_currency` unless every one of `currencies` is in PRICE_CURRENCIES
    (and, with `need_source`, some price source — PRICE_PROVIDERS or PRICE_FIXED — is
    configured: a fiat rule without one would refuse every spend)."""
    settings = deps().settings
    sourced = bool(settings.price_providers or settings.price_fixed) or not need_source
    configured = settings.price_currencies if sourced else ()
    unknown = sorted(set(currencies) - set(configured))
    if unknown:
        why = f"one of {', '.join(configured)}" if sourced else "no price provider is configured"
        raise ApiError(f"{', '.join(unknown)} is not priced here ({why})", code="unsupported_currency",
                       details={"supported": list(configured)})


def requested_currency(query: dict, *, required: bool = False) -> str | None:
    """The `currency` a request asked for, checked by `check_priced`. When not given:
    the first of PRICE_CURRENCIES if `required`, else None."""
    currency = query.get("currency")
    if currency is None:
        configured = deps().settings.price_currencies
        return configured[0] if required and configured else None
    check_priced([currency])
    return currency


def fiat_of(sat: int, rate: Rate, *, stale: bool | None = None) -> dict:
    out = {"currency": rate.currency, "value": str(sat_to_fiat(sat, rate.price, rate.currency)),
           "rate": format_price(rate.price), "as_of": rate.as_of}
    if stale is not None:
        out["stale"] = stale
    return out


def with_balance_fiat(session, balance: dict, currency: str | None, now: dt.datetime) -> dict:
    """`balance` plus `fiat` for `currency` (None: unchanged)."""
    if currency is None:
        return balance
    rate = store.rate(session, currency, now)
    if rate is None:
        return balance
    shown = int(balance.get("confirmed") or 0) + int(balance.get("trusted_pending") or 0)
    return {**balance, "fiat": fiat_of(shown, rate, stale=rate.stale)}


def with_history_fiat(session, page: dict, currency: str | None) -> dict:
    """`page` ({"transactions": [...], …}) with `fiat` on each entry whose day has a price."""
    if currency is None:
        return page
    entries = page.get("transactions") or []
    days = [dt.datetime.fromtimestamp(int(e["time"]), dt.timezone.utc).date() if e.get("time") else None
            for e in entries]
    prices = store.daily(session, currency, [d for d in days if d is not None])
    out = []
    for entry, day in zip(entries, days):
        rate = prices.get(day) if day is not None else None
        out.append({**entry, "fiat": fiat_of(int(entry["amount_sat"]), rate)} if rate is not None else entry)
    return {**page, "transactions": out}
