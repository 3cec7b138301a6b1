"""Beat jobs for prices: refresh the current prices, backfill the daily history. Each
asks the providers first (no transaction open), then writes in one transaction. Safe to
run twice or concurrently (upserts)."""
from __future__ import annotations

import logging

from celery import shared_task

from store.base import utcnow
from store.session import session_scope

log = logging.getLogger("custos.workers")


@shared_task(bind=True, name="workers.price_tasks.refresh_prices")
def refresh_prices(self) -> dict:
    """Ask every provider, validate, store. Returns {currency: price text or None}."""
    from config.bootstrap import price_config, price_providers
    from prices import services
    settings = self.app.custos_settings
    providers, config = price_providers(settings), price_config(settings)
    if not providers:
        return {}
    now = utcnow()
    quotes = services.collect(providers, config.currencies, now)
    with session_scope(settings.database_url) as session:
        results = services.record(session, quotes, config, now)
    return {cur: (str(c.price) if c.ok else None) for cur, c in results.items()}


@shared_task(bind=True, name="workers.price_tasks.backfill_price_history")
def backfill_price_history(self) -> dict:
    """Fill the days of the last PRICE_HISTORY_DAYS that have no daily price yet.
    Returns {currency: days added}."""
    from config.bootstrap import price_config, price_providers
    from prices import services, store
    settings = self.app.custos_settings
    providers, config = price_providers(settings), price_config(settings)
    if not any(p.supports_history for p in providers):
        return {}
    now = utcnow()
    first, last = services.history_window(config, now)
    added = {}
    for cur in config.currencies:
        with session_scope(settings.database_url) as session:
            missing = store.missing_days(session, cur, first, last)
        if not missing:
            continue
        answers = services.collect_history(providers, cur, missing)
        with session_scope(settings.database_url) as session:
            added[cur] = services.record_history(session, cur, answers, config, now)
    return added
