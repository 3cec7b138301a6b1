"""`fiat` objects in balances and history: only when asked (`?currency=USD`), the current
price for the balance (flagged stale), the price of the entry's UTC day for history,
absent (never zero) without a price, 400 for a currency that is not priced."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from app.fiat import with_history_fiat
from prices import store
from store.base import utcnow
from store.session import session_scope
from tests.api.test_policy import funded  # noqa: F401  (fixture)
from tests.api.test_policy_fiat import set_price

UTC = dt.timezone.utc


def test_balance_fiat_only_when_asked_and_absent_without_a_price(device, funded, chain_settings):
    _, account = funded
    path = f"/v1/accounts/{account['account_id']}/balance"
    assert "fiat" not in device.call("GET", path + "?currency=USD")           # no price known: absent, not zero
    now = utcnow().replace(microsecond=0)
    set_price(chain_settings, "60000", at=now)
    plain = device.call("GET", path)
    assert plain["confirmed"] == 50_000_000 and "fiat" not in plain
    got = device.call("GET", path + "?currency=USD")
    assert {k: got[k] for k in plain} == plain                               # satoshi fields unchanged
    assert got["fiat"] == {"currency": "USD", "value": "30000.00", "rate": "60000.00", "as_of": now.isoformat(),
                           "stale": False}
    set_price(chain_settings, "61000", at=now - dt.timedelta(seconds=chain_settings.price_max_age + 1))
    stale = device.call("GET", path + "?currency=USD")["fiat"]
    assert (stale["value"], stale["stale"]) == ("30500.00", True)
    status, _, body = device.request("GET", path + "?currency=GBP")
    assert (status, body["error"]["code"]) == (400, "unsupported_currency")


def test_history_fiat_uses_the_day_price(device, funded, chain_settings):
    _, account = funded
    path = f"/v1/accounts/{account['account_id']}/transactions"
    [entry] = device.call("GET", path + "?currency=USD")["transactions"]
    assert "fiat" not in entry                                                 # no daily price yet
    set_price(chain_settings, "60000")                                         # today's price
    [entry] = device.call("GET", path + "?currency=USD")["transactions"]
    assert entry["fiat"]["value"] == "30000.00" and entry["fiat"]["rate"] == "60000.00"
    assert "fiat" not in device.call("GET", path)["transactions"][0]


def test_history_entries_at_the_price_of_their_utc_day(settings):
    d1, d2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
    now = dt.datetime(2026, 3, 5, tzinfo=UTC)
    with session_scope(settings.database_url) as s:
        store.add_daily(s, "USD", {d1: (Decimal("50000"), "coingecko"), d2: (Decimal("52000"), "coingecko")}, now)
    at = lambda day, h, m=0, sec=0: int(dt.datetime.combine(day, dt.time(h, m, sec), UTC).timestamp())  # noqa: E731
    page = {"transactions": [
        {"txid": "a", "amount_sat": 100_000, "time": at(d1, 23, 59, 59)},
        {"txid": "b", "amount_sat": 100_000, "time": at(d2, 0)},
        {"txid": "c", "amount_sat": 100_000, "time": at(dt.date(2026, 3, 3), 12)},     # no price that day
        {"txid": "d", "amount_sat": 100_000, "time": 0}], "next_cursor": None}
    with session_scope(settings.database_url) as s:
        out = with_history_fiat(s, page, "USD")
    values = {e["txid"]: e.get("fiat", {}).get("value") for e in out["transactions"]}
    assert values == {"a": "50.00", "b": "52.00", "c": None, "d": None}
    assert out["transactions"][0]["fiat"]["as_of"] == dt.datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)
    assert out["next_cursor"] is None and page["transactions"][0].get("fiat") is None     # input untouched
