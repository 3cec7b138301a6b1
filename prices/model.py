"""Tables: the current validated price per currency and one price per currency per UTC
day. Prices are stored as decimal text (exact on every backend; SQLite has no decimal)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Date, String
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, UTCDateTime


class CurrentPrice(Base):
    """The latest validated price. `valid_until` = `as_of` + PRICE_MAX_AGE when it was
    stored: after that the price is stale (shown, never used to decide a spend).
    `checked_at`/`problem` record the last refresh attempt, successful or not."""
    __tablename__ = "prices_current"

    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    price: Mapped[str | None] = mapped_column(String(40))
    as_of: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    valid_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    sources: Mapped[list] = mapped_column(JSON, nullable=False, default=list)      # kept answers
    discarded: Mapped[list] = mapped_column(JSON, nullable=False, default=list)    # answers left out, with why
    checked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    problem: Mapped[str | None] = mapped_column(String(64))


class DailyPrice(Base):
    """One price per currency per UTC day. A day Custos priced itself keeps the last
    validated price of that day (`source` "validated"); days before come from history
    providers (`source` names them)."""
    __tablename__ = "prices_daily"

    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    price: Mapped[str] = mapped_column(String(40), nullable=False)
    source: Mapped[str] = mapped_column(String(64), nullable=False)
    as_of: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
