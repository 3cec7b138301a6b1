"""Fiat limits over HTTP on the test chain: a USD daily limit enforced by the signing gate
with the price of the moment of signing (not of the build), the rate recorded in the
spend's decision and in the audit row, a price move making the same limit fire, a stale
price failing closed, and fiat rules only in priced currencies."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from audit.model import AuditEvent
from config.bootstrap import price_config
from prices import services
from prices.validate import Quote
from store.base import utcnow
from store.session import session_scope
from tests.api.test_policy import funded, signed_spend, submit  # noqa: F401  (fixture)

DAILY_500 = {"limits": [{"window": "24h", "max": "500.00", "currency": "USD"}]}


@pytest.fixture
def chain_settings(chain_settings):
    """The test chain's settings with a price provider configured (fiat rules need one).
    No refresh job runs here: each test stores the prices a refresh would (`set_price`)."""
    return chain_settings.replace(price_providers=(("coinbase", "http://127.0.0.1:9"),))


def set_price(settings, price, at=None):
    """What a refresh stores when the providers agree on `price` (USD) at `at`."""
    at = at or utcnow()
    with session_scope(settings.database_url) as s:
        services.record(s, [Quote("coinbase", "USD", Decimal(price), at), Quote("coingecko", "USD", Decimal(price), at)],
                        price_config(settings), at)


def decision_audit(settings, spend_id):
    with session_scope(settings.database_url) as s:
        return [e.details for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "spend.decision",
                                                                       AuditEvent.subject == spend_id)
                                             .order_by(AuditEvent.seq))]


def test_usd_daily_limit_passes_at_one_price_and_fires_after_a_price_move(device, funded, chain_node, chain_settings,
                                                                         mine):
    phone, account = funded
    aid = account["account_id"]
    set_price(chain_settings, "60000")
    policy = device.call("PUT", f"/v1/accounts/{aid}/policy", DAILY_500)      # a new limit: tightening, at once
    assert policy["rules"]["limits"] == DAILY_500["limits"] and policy["pending_change"] is None

    first, signed = signed_spend(device, phone, account, chain_node, amount=500_000)     # $300 at $60,000
    status, _, sent = submit(device, first, signed)
    assert status == 200 and sent["state"] == "broadcast"
    assert sent["policy_preview"]["rates"]["USD"]["rate"] == "60000.00"
    [audit] = decision_audit(chain_settings, first["spend_id"])
    assert audit["action"] == "approve" and audit["rates"]["USD"]["rate"] == "60000.00"

    mine()  # spends use confirmed coins: confirm the change
    second, signed2 = signed_spend(device, phone, account, chain_node, amount=200_000)   # $120 more at $60,000
    assert second["policy_preview"]["action"] == "approve"
    set_price(chain_settings, "100000")          # before the phone's signature comes back, BTC goes to $100,000
    status, _, err = submit(device, second, signed2)
    assert status == 422 and err["error"]["code"] == "policy_denied"
    [reason] = err["error"]["details"]["reasons"]
    assert reason == {"rule": "velocity_limit", "window": "24h", "currency": "USD", "limit": "500.00",
                      "rate": "100000.00", "limit_sat": 500_000, "used_sat": 500_000, "amount_sat": 200_000,
                      "used": "500.00", "amount": "200.00"}
    assert err["error"]["details"]["rates"]["USD"]["rate"] == "100000.00"
    assert decision_audit(chain_settings, second["spend_id"])[-1] == {
        "action": "deny", "policy_version": policy["version"], "reasons": ["velocity_limit"],
        "rates": {"USD": err["error"]["details"]["rates"]["USD"]}}
    assert device.call("GET", f"/v1/spends/{second['spend_id']}")["state"] == "denied"


def test_stale_price_fails_closed_at_signing(device, funded, chain_node, chain_settings):
    phone, account = funded
    aid = account["account_id"]
    set_price(chain_settings, "60000")
    device.call("PUT", f"/v1/accounts/{aid}/policy", DAILY_500)
    spend, signed = signed_spend(device, phone, account, chain_node, amount=10_000)       # $6
    assert spend["policy_preview"]["action"] == "approve"
    set_price(chain_settings, "60000", at=utcnow() - dt.timedelta(seconds=chain_settings.price_max_age + 1))
    before = set(chain_node.rpc().getrawmempool())
    status, _, err = submit(device, spend, signed)
    assert status == 422 and err["error"]["code"] == "policy_denied"
    [reason] = err["error"]["details"]["reasons"]
    assert (reason["rule"], reason["applies_to"], reason["currency"]) == ("price_unavailable", "velocity_limit", "USD")
    assert decision_audit(chain_settings, spend["spend_id"])[-1]["reasons"] == ["price_unavailable"]
    assert set(chain_node.rpc().getrawmempool()) == before


def test_fiat_cap_per_transaction_and_missing_price(device, funded, chain_node, chain_settings, mine):
    phone, account = funded
    aid = account["account_id"]
    device.call("PUT", f"/v1/accounts/{aid}/policy", {"max_per_tx": {"max": "100", "currency": "USD"}})
    spend, _ = signed_spend(device, phone, account, chain_node, amount=10_000)
    assert spend["policy_preview"]["action"] == "deny"                 # no price at all: fails closed
    assert spend["policy_preview"]["reasons"][0]["rule"] == "price_unavailable"
    device.call("DELETE", f"/v1/spends/{spend['spend_id']}")           # gives its coins back
    set_price(chain_settings, "60000")
    small, signed = signed_spend(device, phone, account, chain_node, amount=166_666)     # $99.9996
    assert submit(device, small, signed)[2]["state"] == "broadcast"
    mine()  # spends use confirmed coins: confirm the change
    big, signed = signed_spend(device, phone, account, chain_node, amount=166_667)
    status, _, err = submit(device, big, signed)
    assert status == 422 and err["error"]["details"]["reasons"][0]["rule"] == "max_per_tx"


@pytest.mark.parametrize("rules,status,code", [
    ({"limits": [{"window": "24h", "max": "5", "currency": "GBP"}]}, 400, "unsupported_currency"),
    ({"max_per_tx": {"max": "5", "currency": "JPY"}}, 400, "unsupported_currency"),
    ({"limits": [{"window": "24h", "max": "5", "currency": "USD", "max_sat": 5}]}, 422, "validation_error"),
    ({"limits": [{"window": "24h", "max": "5"}]}, 422, "validation_error"),
    ({"limits": [{"window": "24h", "max": "5.001", "currency": "USD"}]}, 422, "validation_error"),
    ({"limits": [{"window": "24h", "max": 5, "currency": "USD"}]}, 422, "validation_error"),
    ({"limits": [{"window": "24h", "max": "5", "currency": "USD"}, {"window": "24h", "max": "6", "currency": "USD"}]},
     422, "validation_error")])
def test_bad_fiat_rules_are_refused_and_change_nothing(device, funded, rules, status, code):
    _, account = funded
    aid = account["account_id"]
    before = device.call("GET", f"/v1/accounts/{aid}/policy")
    got, _, body = device.request("PUT", f"/v1/accounts/{aid}/policy", rules)
    assert (got, body["error"]["code"]) == (status, code)
    assert device.call("GET", f"/v1/accounts/{aid}/policy") == before


def test_fiat_rules_need_a_price_source(app_factory, chain_settings, client_factory):
    bare = app_factory(chain_settings.replace(price_providers=()))
    device = client_factory(target=bare)
    device.register()
    status, _, body = device.request("PUT", "/v1/accounts/acct_x/policy", DAILY_500)
    assert (status, body["error"]["code"]) == (400, "unsupported_currency")
    assert "no price provider is configured" in body["error"]["message"]


def test_raising_a_fiat_limit_waits_like_any_loosening(device, funded):
    _, account = funded
    aid = account["account_id"]
    device.call("PUT", f"/v1/accounts/{aid}/policy", DAILY_500)
    loose = device.call("PUT", f"/v1/accounts/{aid}/policy",
                        {"limits": [{"window": "24h", "max": "5000", "currency": "USD"}]})
    assert loose["rules"]["limits"] == DAILY_500["limits"]
    assert loose["pending_change"]["rules"]["limits"] == [{"window": "24h", "max": "5000.00", "currency": "USD"}]


def test_a_held_spend_is_converted_again_at_release_and_on_review(device, funded, chain_node, chain_settings):
    """A delayed spend is judged with the price of the moment it is signed: a tightening
    review keeps it while the price holds; the release after a price move denies it."""
    from config.bootstrap import cosigner_context
    from cosigner import spends
    phone, account = funded
    aid = account["account_id"]
    set_price(chain_settings, "60000")
    rules = {**DAILY_500, "delay_all": True, "delay_seconds": 3600}
    device.call("PUT", f"/v1/accounts/{aid}/policy", rules)
    spend, signed = signed_spend(device, phone, account, chain_node, amount=800_000)     # $480
    held = submit(device, spend, signed)[2]
    assert held["state"] == "delayed"
    device.call("PUT", f"/v1/accounts/{aid}/policy", {**rules, "max_fee_sat": 100_000})  # tightening: review
    assert device.call("GET", f"/v1/spends/{spend['spend_id']}")["state"] == "delayed"
    later = dt.datetime.fromisoformat(held["release_at"]) + dt.timedelta(seconds=1)
    set_price(chain_settings, "100000", at=later)                                         # $800 by then
    with session_scope(chain_settings.database_url) as s:
        released = spends.release(s, cosigner_context(chain_settings), spend["spend_id"], later)
        assert released.state == "denied" and released.txid is None
    got = device.call("GET", f"/v1/spends/{spend['spend_id']}")
    assert got["state"] == "denied" and got["policy_preview"]["rates"]["USD"]["rate"] == "100000.00"


@pytest.mark.parametrize("tightening,outcome", [(100_000, "broadcast"), (10, "denied")])
def test_a_review_without_a_price_leaves_a_held_spend_to_its_release(device, funded, chain_node, chain_settings,
                                                                     tightening, outcome):
    """Tightening while the price is stale does not deny a held spend for want of a price
    (nothing is signed at a review; its release, with the price of then, decides), but
    still denies it for a rule that needs no price (a fee cap below its fee)."""
    from config.bootstrap import cosigner_context
    from cosigner import spends
    phone, account = funded
    aid = account["account_id"]
    set_price(chain_settings, "60000")
    rules = {**DAILY_500, "delay_all": True, "delay_seconds": 3600}
    device.call("PUT", f"/v1/accounts/{aid}/policy", rules)
    spend, signed = signed_spend(device, phone, account, chain_node, amount=100_000)      # $60
    held = submit(device, spend, signed)[2]
    set_price(chain_settings, "60000", at=utcnow() - dt.timedelta(seconds=chain_settings.price_max_age + 1))
    device.call("PUT", f"/v1/accounts/{aid}/policy", {**rules, "max_fee_sat": tightening})   # review
    reviewed = device.call("GET", f"/v1/spends/{spend['spend_id']}")
    if outcome == "denied":
        assert reviewed["state"] == "denied"
        assert [r["rule"] for r in reviewed["policy_preview"]["reasons"]] == ["fee_cap", "delay_all"]
        return
    assert reviewed["state"] == "delayed"
    later = dt.datetime.fromisoformat(held["release_at"]) + dt.timedelta(seconds=1)
    set_price(chain_settings, "61000", at=later)
    with session_scope(chain_settings.database_url) as s:
        released = spends.release(s, cosigner_context(chain_settings), spend["spend_id"], later)
        assert released.state == "broadcast" and released.decision["rates"]["USD"]["rate"] == "61000.00"
