"""Price provider adapters against local HTTP servers that speak each provider's real
response format (Spotbit, CoinGecko, Coinbase): parsing, timestamps, retries with
backoff, timeouts, down and malformed answers (a ProviderError, never a crash or a
price), the User-Agent and API key headers, and history."""
from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

import pytest

from prices import services
from prices.errors import ProviderError
from prices.http import USER_AGENT, HttpJson
from prices.providers import CoinbaseProvider, CoinGeckoProvider, FixedProvider, SpotbitProvider
from tests.price_servers import CoinbaseServer, CoinGeckoServer, SpotbitServer

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def servers():
    made = []

    def make(cls, prices, **kw):
        s = cls(prices, **kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


@pytest.fixture
def http():
    waits = []
    client = HttpJson(timeout=1.0, retries=2, backoff=0.25, sleep=waits.append)
    client.waits = waits
    return client


def test_spotbit_current_format(servers, http):
    srv = servers(SpotbitServer, {"USD": "60123.45", "EUR": "55000.1"}, timestamp=NOW - dt.timedelta(minutes=3))
    quotes = SpotbitProvider(srv.url, http).spot(["USD", "EUR"], NOW)
    assert [(x.source, x.currency, x.price, x.as_of) for x in quotes] == [
        ("spotbit", "USD", Decimal("60123.45"), NOW - dt.timedelta(minutes=3)),
        ("spotbit", "EUR", Decimal("55000.1"), NOW - dt.timedelta(minutes=3))]
    assert [p for p, _, _ in srv.requests] == ["/api/now/USD", "/api/now/EUR"]
    assert srv.requests[0][2]["user-agent"] == USER_AGENT


def test_spotbit_one_currency_missing_is_logged_and_the_rest_kept(servers, http, caplog):
    srv = servers(SpotbitServer, {"USD": "60000"})
    with caplog.at_level(logging.WARNING, logger="prices.providers"):
        quotes = SpotbitProvider(srv.url, http).spot(["USD", "EUR"], NOW)
    assert [x.currency for x in quotes] == ["USD"]
    assert "spotbit: EUR" in caplog.text and "HTTP 404" in caplog.text


def test_coingecko_simple_price_with_last_updated_and_api_key(servers, http):
    stamp = NOW - dt.timedelta(seconds=40)
    srv = servers(CoinGeckoServer, {"USD": "60000.123456789012", "EUR": "55000"}, timestamp=stamp)
    quotes = CoinGeckoProvider(srv.url, http, api_key="cg-demo-key").spot(["USD", "EUR"], NOW)
    assert [(x.currency, x.price, x.as_of) for x in quotes] == [
        ("USD", Decimal("60000.123456789012"), stamp), ("EUR", Decimal("55000"), stamp)]   # no float rounding
    path, query, headers = srv.requests[0]
    assert path == "/api/v3/simple/price" and query["ids"] == "bitcoin" and query["vs_currencies"] == "usd,eur"
    assert headers["x-cg-demo-api-key"] == "cg-demo-key"


def test_coinbase_spot_is_as_of_the_request(servers, http):
    srv = servers(CoinbaseServer, {"USD": "60001.5"})
    [quote] = CoinbaseProvider(srv.url, http).spot(["USD"], NOW)
    assert (quote.source, quote.price, quote.as_of) == ("coinbase", Decimal("60001.5"), NOW)
    assert srv.requests[0][0] == "/v2/prices/BTC-USD/spot"


def test_fixed_provider():
    quotes = FixedProvider({"USD": Decimal("60000")}).spot(["USD", "EUR"], NOW)
    assert [(x.currency, x.price, x.as_of) for x in quotes] == [("USD", Decimal("60000"), NOW)]


@pytest.mark.parametrize("cls,make", [
    (SpotbitServer, lambda url, h: SpotbitProvider(url, h)),
    (CoinGeckoServer, lambda url, h: CoinGeckoProvider(url, h)),
    (CoinbaseServer, lambda url, h: CoinbaseProvider(url, h))])
def test_provider_down_is_retried_with_backoff_then_refused(servers, http, cls, make):
    srv = servers(cls, {"USD": "60000"})
    srv.mode = "down"
    with pytest.raises(ProviderError) as err:
        make(srv.url, http).spot(["USD"], NOW)
    assert err.value.transient and "HTTP 503" in str(err.value)
    assert len(srv.requests) == 3 and http.waits == [0.25, 0.5]


def test_a_transient_failure_then_an_answer(servers, http):
    srv = servers(CoinbaseServer, {"USD": "60000"})
    srv.fail_first = 1
    [quote] = CoinbaseProvider(srv.url, http).spot(["USD"], NOW)
    assert quote.price == Decimal("60000") and len(srv.requests) == 2


@pytest.mark.parametrize("cls,make", [
    (SpotbitServer, lambda url, h: SpotbitProvider(url, h)),
    (CoinGeckoServer, lambda url, h: CoinGeckoProvider(url, h)),
    (CoinbaseServer, lambda url, h: CoinbaseProvider(url, h))])
@pytest.mark.parametrize("mode", ["malformed", "garbage"])
def test_malformed_answer_is_a_clear_error_not_a_price(servers, http, cls, make, mode):
    srv = servers(cls, {"USD": "60000"})
    srv.mode = mode
    provider = make(srv.url, http)
    with pytest.raises(ProviderError) as err:
        provider.spot(["USD"], NOW)
    assert provider.name in str(err.value) and not err.value.transient
    assert len(srv.requests) == 1                              # not retried


def test_collect_logs_a_broken_provider_and_keeps_the_others(servers, http, caplog):
    good = servers(CoinbaseServer, {"USD": "60000"})
    bad = servers(SpotbitServer, {"USD": "60000"})
    bad.mode = "garbage"
    with caplog.at_level(logging.WARNING, logger="prices"):
        quotes = services.collect([SpotbitProvider(bad.url, http), CoinbaseProvider(good.url, http)], ("USD",), NOW)
    assert [x.source for x in quotes] == ["coinbase"]
    assert "spotbit" in caplog.text and "not JSON" in caplog.text


def test_a_slow_provider_times_out(servers):
    srv = servers(CoinbaseServer, {"USD": "60000"})
    srv.mode, srv.delay = "slow", 1.5
    with pytest.raises(ProviderError) as err:
        CoinbaseProvider(srv.url, HttpJson(timeout=0.3, retries=0)).spot(["USD"], NOW)
    assert err.value.transient and "unreachable" in str(err.value)


def test_unreachable_provider(http):
    with pytest.raises(ProviderError) as err:
        CoinbaseProvider("http://127.0.0.1:9", http).spot(["USD"], NOW)
    assert err.value.transient


def test_coingecko_history_takes_the_last_point_of_each_day(servers, http):
    srv = servers(CoinGeckoServer, {})
    d1, d2, d3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)
    srv.history = {"USD": {d1: "50000", d2: "51000", d3: "52000"}}
    got = CoinGeckoProvider(srv.url, http).history("USD", [d2, d1])
    assert got == {d1: Decimal("50000"), d2: Decimal("51000")}
    _, query, _ = srv.requests[0]
    assert query["vs_currency"] == "usd" and int(query["from"]) == int(dt.datetime(2026, 3, 1, tzinfo=UTC).timestamp())


def test_coinbase_history_asks_per_day(servers, http):
    srv = servers(CoinbaseServer, {})
    d1 = dt.date(2026, 3, 1)
    srv.history = {"USD": {d1: "50010"}}
    assert CoinbaseProvider(srv.url, http).history("USD", [d1]) == {d1: Decimal("50010")}
    assert srv.requests[0][1] == {"date": "2026-03-01"}
