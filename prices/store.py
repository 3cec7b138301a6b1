"""Reading and writing the price tables. Every function takes an open session (the
caller's transaction) and `now`; writes are upserts, so running a refresh twice is
harmless and two refreshes at once never fail on a duplicate key."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from prices.model import CurrentPrice, DailyPrice
from prices.money import Rate, format_price
from prices.validate import Combined

VALIDATED = "validated"


def _upsert(session: Session, model, values: dict, keys: tuple[str, ...], update: tuple[str, ...]) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(model).values(**values)
    stmt = stmt.on_conflict_do_update(index_elements=list(keys),
                                      set_={k: getattr(stmt.excluded, k) for k in update})
    session.execute(stmt)


def save(session: Session, combined: Combined, *, now: dt.datetime, max_age: dt.timedelta) -> None:
    """Record a refresh of one currency. With a price: it becomes the current price
    (valid until as_of + max_age) and today's daily price. Without: the last good price
    stays as it was (it goes stale on its own) and the problem is noted."""
    discarded = [{**q.as_dict(), "reason": why} for q, why in combined.discarded]
    if not combined.ok:
        _upsert(session, CurrentPrice, {
            "currency": combined.currency, "price": None, "as_of": None, "valid_until": None, "sources": [],
            "discarded": discarded, "checked_at": now, "problem": combined.problem},
            ("currency",), ("discarded", "checked_at", "problem"))
        return
    price = format_price(combined.price)
    _upsert(session, CurrentPrice, {
        "currency": combined.currency, "price": price, "as_of": combined.as_of,
        "valid_until": combined.as_of + max_age, "sources": [q.as_dict() for q in combined.kept],
        "discarded": discarded, "checked_at": now, "problem": None},
        ("currency",), ("price", "as_of", "valid_until", "sources", "discarded", "checked_at", "problem"))
    day = combined.as_of.astimezone(dt.timezone.utc).date()
    _upsert(session, DailyPrice, {"currency": combined.currency, "day": day, "price": price,
                                  "source": VALIDATED, "as_of": combined.as_of},
            ("currency", "day"), ("price", "source", "as_of"))


def add_daily(session: Session, currency: str, prices: dict[dt.date, tuple[Decimal, str]], now: dt.datetime) -> int:
    """Fill days that have no price yet (a day already priced, by a refresh or an earlier
    backfill, is kept). Returns how many days were added."""
    have = set(session.scalars(select(DailyPrice.day).where(DailyPrice.currency == currency,
                                                            DailyPrice.day.in_(list(prices)))))
    added = 0
    for day, (price, source) in sorted(prices.items()):
        if day in have:
            continue
        as_of = dt.datetime.combine(day, dt.time(23, 59, 59), dt.timezone.utc)
        session.add(DailyPrice(currency=currency, day=day, price=format_price(price), source=source[:64],
                               as_of=min(as_of, now)))
        added += 1
    session.flush()
    return added


def missing_days(session: Session, currency: str, first: dt.date, last: dt.date) -> list[dt.date]:
    """Days in [first, last] with no daily price."""
    if last < first:
        return []
    have = set(session.scalars(select(DailyPrice.day).where(DailyPrice.currency == currency,
                                                            DailyPrice.day >= first, DailyPrice.day <= last)))
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)
            if first + dt.timedelta(days=i) not in have]


def _rate(row: CurrentPrice, now: dt.datetime) -> Rate | None:
    if row is None or row.price is None:
        return None
    return Rate(row.currency, Decimal(row.price), row.as_of, stale=now > row.valid_until,
                sources=tuple(s.get("source", "") for s in row.sources or ()))


def rate(session: Session, currency: str, now: dt.datetime) -> Rate | None:
    """The current price of `currency` (flagged stale when past its validity), or None."""
    return _rate(session.get(CurrentPrice, currency), now)


def rates(session: Session, currencies, now: dt.datetime) -> dict[str, Rate]:
    """Current prices for `currencies` (those known; stale ones flagged)."""
    currencies = sorted(set(currencies))
    if not currencies:
        return {}
    rows = session.scalars(select(CurrentPrice).where(CurrentPrice.currency.in_(currencies)))
    return {r.currency: rt for r in rows if (rt := _rate(r, now)) is not None}


def current_row(session: Session, currency: str) -> CurrentPrice | None:
    return session.get(CurrentPrice, currency)


def daily(session: Session, currency: str, days) -> dict[dt.date, Rate]:
    """The daily prices of `currency` on `days` (those known), as Rates dated `as_of`."""
    days = sorted(set(days))
    if not days:
        return {}
    rows = session.scalars(select(DailyPrice).where(DailyPrice.currency == currency, DailyPrice.day.in_(days)))
    return {r.day: Rate(currency, Decimal(r.price), r.as_of, sources=(r.source,)) for r in rows}
