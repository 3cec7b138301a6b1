"""The price jobs on the real database: refresh (median, outlier discarded and logged,
stale handling, providers down), daily history backfill (validated per day, priced days
kept), and the refresh task run by a real Celery worker process against local provider
servers."""
from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

import pytest
from sqlalchemy import select

from config.bootstrap import price_config, price_providers
from prices import services, store
from prices.model import CurrentPrice, DailyPrice
from store.base import utcnow
from store.session import session_scope
from tests.conftest import make_settings
from tests.price_servers import CoinbaseServer, CoinGeckoServer, SpotbitServer


@pytest.fixture
def three():
    s = [SpotbitServer({"USD": "60000", "EUR": "55000"}), CoinGeckoServer({"USD": "60200", "EUR": "55100"}),
         CoinbaseServer({"USD": "70000", "EUR": "55050"})]
    yield s
    for x in s:
        x.close()


def env_for(servers) -> dict:
    return {"PRICE_PROVIDERS": ",".join(f"{x.kind}={x.url}" for x in servers), "PRICE_RETRIES": "0",
            "PRICE_TIMEOUT": "2"}


def refresh(settings, now):
    providers, config = price_providers(settings), price_config(settings)
    quotes = services.collect(providers, config.currencies, now)
    with session_scope(settings.database_url) as s:
        return services.record(s, quotes, config, now)


def test_refresh_stores_the_median_of_agreeing_providers_and_logs_the_outlier(settings_factory, three, caplog):
    settings = settings_factory(**env_for(three))
    now = utcnow()
    with caplog.at_level(logging.WARNING, logger="prices"):
        results = refresh(settings, now)
    assert results["USD"].price == Decimal("60100") and results["EUR"].price == Decimal("55050")
    assert "price USD from coinbase (70000) discarded: deviation" in caplog.text
    with session_scope(settings.database_url) as s:
        usd = s.get(CurrentPrice, "USD")
        assert (usd.price, usd.problem) == ("60100.00", None)
        assert [x["source"] for x in usd.sources] == ["spotbit", "coingecko"]
        assert [(x["source"], x["reason"]) for x in usd.discarded] == [("coinbase", "deviation")]
        assert usd.valid_until - usd.as_of == dt.timedelta(seconds=settings.price_max_age)
        eur = s.get(CurrentPrice, "EUR")
        assert eur.price == "55050.00" and len(eur.sources) == 3
        today = s.get(DailyPrice, ("USD", now.date()))
        assert (today.price, today.source) == ("60100.00", "validated")
        rate = store.rate(s, "USD", now)
        assert (rate.price, rate.stale) == (Decimal("60100.00"), False)


def test_providers_down_keep_the_last_price_which_goes_stale(settings_factory, three):
    settings = settings_factory(**env_for(three))
    t0 = utcnow()
    refresh(settings, t0)
    for x in three:
        x.mode = "down"
    t1 = t0 + dt.timedelta(minutes=1)
    results = refresh(settings, t1)
    assert results["USD"].problem == "no_answers"
    with session_scope(settings.database_url) as s:
        row = s.get(CurrentPrice, "USD")
        assert (row.price, row.problem, row.checked_at) == ("60100.00", "no_answers", t1)
        assert store.rate(s, "USD", t1).stale is False
        later = store.rate(s, "USD", row.valid_until + dt.timedelta(seconds=1))
        assert later.price == Decimal("60100.00") and later.stale is True


def test_no_price_ever_is_absent_not_zero(settings_factory, three):
    for x in three:
        x.mode = "malformed"
    settings = settings_factory(**env_for(three))
    refresh(settings, utcnow())
    with session_scope(settings.database_url) as s:
        assert store.rate(s, "USD", utcnow()) is None
        assert store.rates(s, ["USD", "EUR"], utcnow()) == {}
        assert s.get(CurrentPrice, "USD").problem == "no_answers"


def test_disagreeing_providers_give_no_new_price(settings_factory):
    a, b = CoinbaseServer({"USD": "60000"}), SpotbitServer({"USD": "66000"})
    try:
        settings = settings_factory(**env_for([a, b]), PRICE_CURRENCIES="USD")
        results = refresh(settings, utcnow())
        assert (results["USD"].ok, results["USD"].problem) == (False, "too_few_sources")
        with session_scope(settings.database_url) as s:
            assert store.rate(s, "USD", utcnow()) is None
    finally:
        a.close()
        b.close()


def test_backfill_fills_missing_days_validated_per_day_and_keeps_priced_days(settings_factory):
    gecko, base = CoinGeckoServer({}), CoinbaseServer({})
    try:
        now = utcnow()
        today = now.date()
        days = [today - dt.timedelta(days=i) for i in (3, 2, 1)]
        gecko.history = {"USD": {days[0]: "50000", days[1]: "51000", days[2]: "52000"}}
        base.history = {"USD": {days[0]: "50100", days[1]: "60000", days[2]: "52100"}}   # day 2 disagrees
        settings = settings_factory(**env_for([gecko, base]), PRICE_CURRENCIES="USD", PRICE_HISTORY_DAYS="3")
        config, providers = price_config(settings), price_providers(settings)
        with session_scope(settings.database_url) as s:       # day 1 was priced by a refresh already
            store.add_daily(s, "USD", {days[2]: (Decimal("52050"), "validated")}, now)
            first, last = services.history_window(config, now)
            missing = store.missing_days(s, "USD", first, last)
        assert (first, last, missing) == (days[0], days[2], days[:2])
        answers = services.collect_history(providers, "USD", missing)
        with session_scope(settings.database_url) as s:
            assert services.record_history(s, "USD", answers, config, now) == 1
            rows = {r.day: (r.price, r.source) for r in s.scalars(select(DailyPrice))}
        assert rows == {days[0]: ("50050.00", "coinbase+coingecko"), days[2]: ("52050.00", "validated")}
    finally:
        gecko.close()
        base.close()


def test_the_worker_process_refreshes_prices(database_url, clean_db, tmp_path, three):
    """The beat job's task, run by a real Celery worker (embedded broker in tmp)."""
    from tests.integration.messaging_worker import start_worker, stop
    from tests.waiting import wait_for
    from workers.celery_app import make_celery
    broker = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    proc = start_worker(database_url, broker, tmp_path / "worker.log", **env_for(three))
    try:
        celery = make_celery(make_settings(database_url, None, broker))
        celery.send_task("workers.price_tasks.refresh_prices")

        def stored():
            with session_scope(database_url) as s:
                row = s.get(CurrentPrice, "USD")
                return row if row is not None and row.price else None
        row = wait_for(stored, what="refreshed USD price", log_path=tmp_path / "worker.log")
        assert row.price == "60100.00"
        assert "discarded: deviation" in (tmp_path / "worker.log").read_text()
    finally:
        stop(proc)
