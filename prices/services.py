"""The price use cases the beat jobs run: `refresh` (current prices) and `backfill`
(daily history). Network first, database after: `collect`/`collect_history` talk to the
providers and hold no transaction; `record`/`record_history` write in the caller's
transaction. Both are idempotent (upserts; a priced day is never overwritten by a
backfill) and safe to run concurrently.
"""
from __future__ import annotations

import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session

from prices import store
from prices.errors import ProviderError
from prices.validate import Combined, Quote, combine

log = logging.getLogger(__name__)
HISTORY_MAX_AGE = dt.timedelta(days=2)    # a day's price is "fresh" for that day's validation


@dataclass(frozen=True)
class PriceConfig:
    """What validation needs, built from settings (config.bootstrap.price_config)."""
    currencies: tuple[str, ...]
    max_age: dt.timedelta
    max_deviation: Decimal
    min_sources: int = 1
    history_days: int = 365


def _ask(provider, what: str, call):
    try:
        return call()
    except ProviderError as err:
        log.warning("price provider %s: %s failed: %s", provider.name, what, err)
    except Exception as err:  # a parser surprised by an answer: log it, never crash the job
        log.error("price provider %s: %s gave a malformed answer (%s)", provider.name, what, type(err).__name__)
    return None


def collect(providers, currencies, now: dt.datetime) -> list[Quote]:
    """Ask every provider for every currency, concurrently. A provider that is down or
    answers nonsense is logged and contributes nothing."""
    if not providers or not currencies:
        return []
    with ThreadPoolExecutor(max_workers=len(providers)) as pool:
        answers = list(pool.map(lambda p: _ask(p, "spot", lambda: p.spot(list(currencies), now)), providers))
    return [q for quotes in answers if quotes for q in quotes if q.currency in currencies]


def record(session: Session, quotes, config: PriceConfig, now: dt.datetime) -> dict[str, Combined]:
    """Validate `quotes` per currency and store the outcome (see store.save). Logs every
    discarded answer and every currency left without a price."""
    results = {}
    for cur in config.currencies:
        combined = combine(cur, quotes, now=now, max_age=config.max_age, max_deviation=config.max_deviation,
                           min_sources=config.min_sources)
        for quote, why in combined.discarded:
            log.warning("price %s from %s (%s) discarded: %s%s", cur, quote.source, quote.price, why,
                        f" (median of fresh answers {combined.price})" if why == "deviation" and combined.ok else "")
        if not combined.ok:
            log.warning("no validated %s price this refresh: %s", cur, combined.problem)
        store.save(session, combined, now=now, max_age=config.max_age)
        results[cur] = combined
    return results


def history_window(config: PriceConfig, now: dt.datetime) -> tuple[dt.date, dt.date]:
    """[first, last] days the backfill keeps priced: the last `history_days` before today."""
    today = now.astimezone(dt.timezone.utc).date()
    return today - dt.timedelta(days=config.history_days), today - dt.timedelta(days=1)


def collect_history(providers, currency: str, days) -> dict[str, dict[dt.date, Decimal]]:
    """{provider name: {day: price}} from the history-capable providers."""
    out = {}
    for p in providers:
        if p.supports_history:
            got = _ask(p, f"{currency} history", lambda: p.history(currency, days))
            if got:
                out[p.name] = got
    return out


def record_history(session: Session, currency: str, answers: dict[str, dict[dt.date, Decimal]], config: PriceConfig,
                   now: dt.datetime) -> int:
    """Validate each day's answers like current prices (median, deviation discard, quorum)
    and store the days that agree. Returns the number of days added."""
    days = sorted({d for per_day in answers.values() for d in per_day})
    chosen = {}
    for day in days:
        end = dt.datetime.combine(day, dt.time(23, 59, 59), dt.timezone.utc)
        quotes = [Quote(name, currency, per_day[day], end) for name, per_day in answers.items() if day in per_day]
        combined = combine(currency, quotes, now=end, max_age=HISTORY_MAX_AGE, max_deviation=config.max_deviation,
                           min_sources=config.min_sources)
        if combined.ok:
            chosen[day] = (combined.price, "+".join(sorted(q.source for q in combined.kept)))
        else:
            log.warning("no validated %s price for %s: %s", currency, day, combined.problem)
    return store.add_daily(session, currency, chosen, now)
