"""GET /v1/prices: the stored validated price, its sources and what was discarded,
`stale` after PRICE_MAX_AGE, 503 `price_unavailable` when none is known, 400 for a
currency that is not priced."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from config.bootstrap import price_config
from prices import services
from prices.validate import Quote
from store.base import utcnow
from store.session import session_scope


def put_prices(settings, now, **prices):
    """Record a refresh whose providers answered `prices` ({"USD": ["60000", "60100"]}) at `now`."""
    quotes = [Quote(f"p{i}", cur, Decimal(p), now) for cur, ps in prices.items() for i, p in enumerate(ps)]
    with session_scope(settings.database_url) as s:
        services.record(s, quotes, price_config(settings), now)


@pytest.fixture
def device(client_factory):
    c = client_factory()
    c.register()
    return c


def test_price_with_sources_and_discarded(device, settings):
    now = utcnow().replace(microsecond=0)
    put_prices(settings, now, USD=["60000", "60100", "75000"])
    got = device.call("GET", "/v1/prices?currency=USD")
    assert got["currency"] == "USD" and got["price"] == "60050.00" and got["stale"] is False
    assert dt.datetime.fromisoformat(got["as_of"]) == now
    assert [s["source"] for s in got["sources"]] == ["p0", "p1"]
    assert [(s["source"], s["price"], s["reason"]) for s in got["discarded"]] == [("p2", "75000", "deviation")]


def test_default_currency_is_the_first_configured(device, settings):
    put_prices(settings, utcnow(), USD=["60000"], EUR=["55000"])
    assert device.call("GET", "/v1/prices")["currency"] == "USD"
    assert device.call("GET", "/v1/prices?currency=EUR")["price"] == "55000.00"


def test_stale_price_is_flagged(device, settings):
    put_prices(settings, utcnow() - dt.timedelta(seconds=settings.price_max_age + 5), USD=["60000"])
    got = device.call("GET", "/v1/prices?currency=USD")
    assert got["price"] == "60000.00" and got["stale"] is True


def test_no_price_known_is_503_price_unavailable(device, settings):
    status, headers, body = device.request("GET", "/v1/prices?currency=USD")
    assert status == 503 and body["error"]["code"] == "price_unavailable"
    assert body["error"]["details"] == {"problem": "never_refreshed"} and headers["Retry-After"] == "60"
    put_prices(settings, utcnow(), USD=["60000", "70000"])          # providers disagree: no price
    status, _, body = device.request("GET", "/v1/prices?currency=USD")
    assert status == 503 and body["error"]["details"] == {"problem": "too_few_sources"}


@pytest.mark.parametrize("query,status,code", [("?currency=GBP", 400, "unsupported_currency"),
                                               ("?currency=usd", 422, "validation_error")])
def test_bad_currency(device, query, status, code):
    got_status, _, body = device.request("GET", "/v1/prices" + query)
    assert (got_status, body["error"]["code"]) == (status, code)


def test_unsigned_request_is_refused(app):
    resp = app.test_client().get("/v1/prices?currency=USD")
    assert resp.status_code == 401
