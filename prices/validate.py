"""Combining the answers of several providers into one price. Pure; time is passed in.

Rules (issue #16): answers older than `max_age` are stale and left out (an answer dated
more than a minute ahead is refused: it would never go stale); the reference is the
median of the fresh answers; an answer more than `max_deviation` (a fraction, 0.02 = 2 %)
away from that reference is discarded; the price used is the median of what is kept.
Fewer than `min_sources` kept answers (at least one) means no price at all: two providers
that disagree by more than about twice the deviation give no price, never the average of
a good and a bad one.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from decimal import Decimal

FUTURE_SKEW = dt.timedelta(seconds=60)   # an answer dated later than this is refused (it would never go stale)


@dataclass(frozen=True)
class Quote:
    """One provider's answer: the price of 1 BTC in `currency` as of `as_of`."""
    source: str
    currency: str
    price: Decimal
    as_of: dt.datetime

    def as_dict(self) -> dict:
        return {"source": self.source, "price": str(self.price), "as_of": self.as_of.isoformat()}


@dataclass(frozen=True)
class Combined:
    """The outcome for one currency. `price`/`as_of` are None when no price could be
    agreed; `as_of` is the oldest kept answer's time (the conservative choice)."""
    currency: str
    price: Decimal | None
    as_of: dt.datetime | None
    kept: tuple = field(default=())
    discarded: tuple = field(default=())      # (Quote, reason) pairs: "future" | "stale" | "deviation"
    problem: str | None = None                # why there is no price: no_answers | all_stale | too_few_sources

    @property
    def ok(self) -> bool:
        return self.price is not None


def median(values) -> Decimal:
    """The median of a non-empty sequence of Decimals (mean of the middle two when even)."""
    v = sorted(values)
    if not v:
        raise ValueError("median of nothing")
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def combine(currency: str, quotes, *, now: dt.datetime, max_age: dt.timedelta, max_deviation: Decimal,
            min_sources: int = 1) -> Combined:
    """Validate and combine `quotes` (answers for `currency`; others are ignored)."""
    answers = [q for q in quotes if q.currency == currency]
    if not answers:
        return Combined(currency, None, None, problem="no_answers")
    discarded = [(q, "future") for q in answers if q.as_of - now > FUTURE_SKEW]
    answers = [replace(q, as_of=min(q.as_of, now)) for q in answers if q.as_of - now <= FUTURE_SKEW]
    fresh = [q for q in answers if now - q.as_of <= max_age]
    discarded += [(q, "stale") for q in answers if now - q.as_of > max_age]
    if not fresh:
        return Combined(currency, None, None, discarded=tuple(discarded), problem="all_stale")
    reference = median(q.price for q in fresh)
    kept = [q for q in fresh if abs(q.price - reference) <= max_deviation * reference]
    discarded += [(q, "deviation") for q in fresh if abs(q.price - reference) > max_deviation * reference]
    if len(kept) < max(1, min_sources):
        return Combined(currency, None, None, tuple(kept), tuple(discarded), problem="too_few_sources")
    return Combined(currency, median(q.price for q in kept), min(q.as_of for q in kept), tuple(kept),
                    tuple(discarded))
