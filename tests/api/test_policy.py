"""The policy engine through the API on the test chain: delayed spends released once by
the job after the delay (clock passed in), cancellation, pending loosening changes,
freeze, and approvals by a second device and by staff."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from client.phone import PhoneWallet
from client.sdk import ApiError, CustosClient, DeviceKey
from config.bootstrap import cosigner_context
from cosigner import spends
from store.base import utcnow
from store.session import session_scope
from tests.api.accounts_kit import create, fund
from tests.conftest import flask_transport
from workers import jobs


@pytest.fixture
def funded(device, chain_node, mine):
    phone = PhoneWallet()
    account = create(device, phone)
    fund(chain_node, mine, device, account, "0.5")
    return phone, account


def signed_spend(device, phone, account, chain_node, amount=1_000_000):
    outputs = [{"address": chain_node.faucet.getnewaddress(), "amount_sat": amount}]
    spend = device.call("POST", f"/v1/accounts/{account['account_id']}/spends", {"outputs": outputs, "fee_rate_sat_vb": 2})
    return spend, phone.sign(phone.verify_spend(account, spend, outputs))


def submit(device, spend, signed):
    return device.request("POST", f"/v1/spends/{spend['spend_id']}/signatures", {"psbt": signed})


def run_due_jobs(settings, now):
    """What the reconciler + run_job tasks do, with the clock passed in."""
    import importlib
    import workers.handlers  # noqa: F401  (registers the handlers)
    from workers.celery_app import make_celery
    celery = make_celery(settings)
    celery.set_current()  # handlers read settings from the current Celery app
    for module in celery.conf.include:   # every handler module a worker loads
        importlib.import_module(module)
    with session_scope(settings.database_url) as s:
        ids = jobs.due(s, now)
    for job_id in ids:
        with session_scope(settings.database_url) as s:
            job = jobs.claim(s, job_id, now)
            if job is not None:
                jobs.run(s, job, now)
    return ids


def test_delayed_spend_is_released_once_after_the_delay(device, funded, chain_node, chain_settings):
    phone, account = funded
    aid = account["account_id"]
    device.call("PUT", f"/v1/accounts/{aid}/policy", {"delay_above_sat": 0, "delay_seconds": 3600})
    spend, signed = signed_spend(device, phone, account, chain_node)
    assert spend["policy_preview"]["action"] == "delay"
    status, _, held = submit(device, spend, signed)
    assert status == 200 and held["state"] == "delayed" and held["txid"] is None
    release_at = dt.datetime.fromisoformat(held["release_at"])
    run_due_jobs(chain_settings, release_at - dt.timedelta(seconds=1))   # not yet due
    assert device.call("GET", f"/v1/spends/{spend['spend_id']}")["state"] == "delayed"
    ctx = cosigner_context(chain_settings)
    later = release_at + dt.timedelta(seconds=1)
    with session_scope(chain_settings.database_url) as s:
        first = spends.release(s, ctx, spend["spend_id"], later)
        txid = first.txid
    with session_scope(chain_settings.database_url) as s:   # a second worker: nothing to do
        assert spends.release(s, ctx, spend["spend_id"], later) is None
    assert chain_node.rpc().getrawmempool().count(txid) == 1
    got = device.call("GET", f"/v1/spends/{spend['spend_id']}")
    assert got["state"] == "broadcast" and got["txid"] == txid


def test_cancelled_delayed_spend_never_broadcasts(device, funded, chain_node, chain_settings):
    phone, account = funded
    device.call("PUT", f"/v1/accounts/{account['account_id']}/policy", {"delay_all": True, "delay_seconds": 60})
    spend, signed = signed_spend(device, phone, account, chain_node)
    assert submit(device, spend, signed)[2]["state"] == "delayed"
    assert device.call("DELETE", f"/v1/spends/{spend['spend_id']}")["state"] == "cancelled"
    before = set(chain_node.rpc().getrawmempool())
    run_due_jobs(chain_settings, utcnow() + dt.timedelta(hours=1))
    assert set(chain_node.rpc().getrawmempool()) == before
    assert device.call("GET", f"/v1/spends/{spend['spend_id']}")["state"] == "cancelled"


def test_loosening_is_pending_visible_cancellable_and_effective_only_after_delay(device, funded, chain_settings):
    _, account = funded
    aid = account["account_id"]
    tight = device.call("PUT", f"/v1/accounts/{aid}/policy", {"max_per_tx_sat": 10_000})
    assert tight["rules"]["max_per_tx_sat"] == 10_000 and tight["pending_change"] is None  # tightening: at once
    loose = device.call("PUT", f"/v1/accounts/{aid}/policy", {"max_per_tx_sat": 5_000_000})
    change = loose["pending_change"]
    assert loose["rules"]["max_per_tx_sat"] == 10_000 and change["state"] == "pending"
    effective = dt.datetime.fromisoformat(change["effective_at"])
    assert effective - utcnow() > dt.timedelta(hours=71)
    listed = device.call("GET", f"/v1/accounts/{aid}/policy/changes")
    assert [c["change_id"] for c in listed] == [change["change_id"]]
    run_due_jobs(chain_settings, effective - dt.timedelta(minutes=1))
    assert device.call("GET", f"/v1/accounts/{aid}/policy")["rules"]["max_per_tx_sat"] == 10_000
    run_due_jobs(chain_settings, effective + dt.timedelta(seconds=1))
    assert device.call("GET", f"/v1/accounts/{aid}/policy")["rules"]["max_per_tx_sat"] == 5_000_000
    # a second loosening, cancelled: never applies
    device.call("PUT", f"/v1/accounts/{aid}/policy", {"max_per_tx_sat": 5_000_000, "limits": []})
    again = device.call("PUT", f"/v1/accounts/{aid}/policy", {"max_per_tx_sat": None})
    cid = again["pending_change"]["change_id"]
    assert device.call("DELETE", f"/v1/accounts/{aid}/policy/changes/{cid}")["state"] == "cancelled"
    run_due_jobs(chain_settings, utcnow() + dt.timedelta(days=4))
    assert device.call("GET", f"/v1/accounts/{aid}/policy")["rules"]["max_per_tx_sat"] == 5_000_000


def test_freeze_blocks_every_spend_and_unfreeze_waits(device, funded, chain_node):
    phone, account = funded
    aid = account["account_id"]
    frozen = device.call("POST", f"/v1/accounts/{aid}/freeze", {"frozen": True})
    assert frozen["rules"]["frozen"] is True
    spend, signed = signed_spend(device, phone, account, chain_node)
    status, _, err = submit(device, spend, signed)
    assert status == 422 and err["error"]["code"] == "policy_denied"
    assert err["error"]["details"]["reasons"] == [{"rule": "frozen", "by": "owner"}]
    assert device.call("GET", f"/v1/spends/{spend['spend_id']}")["state"] == "denied"
    lift = device.call("POST", f"/v1/accounts/{aid}/freeze", {"frozen": False})
    assert lift["rules"]["frozen"] is True and lift["pending_change"]["rules"]["frozen"] is False


def test_approval_by_a_second_device(device, funded, chain_node, chain_app):
    phone, account = funded
    aid = account["account_id"]
    second = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(chain_app))
    second.register()
    stranger = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(chain_app))
    stranger.register()
    # requiring approvals where none were required tightens: it applies at once
    set_ = device.call("PUT", f"/v1/accounts/{aid}/policy",
                       {"approvals": {"above_sat": 0, "required": 1, "devices": [second.device_id]}})
    assert set_["pending_change"] is None and set_["rules"]["approvals"]["devices"] == [second.device_id]
    # adding another approver later loosens: it waits
    more = device.call("PUT", f"/v1/accounts/{aid}/policy",
                       {"approvals": {"above_sat": 0, "required": 1, "devices": [second.device_id, stranger.device_id]}})
    assert more["rules"]["approvals"]["devices"] == [second.device_id] and more["pending_change"] is not None
    spend, signed = signed_spend(device, phone, account, chain_node)
    held = submit(device, spend, signed)[2]
    assert held["state"] == "awaiting_approval"
    with pytest.raises(ApiError) as info:
        stranger.call("GET", f"/v1/spends/{spend['spend_id']}/approvals")
    assert info.value.status == 404
    with pytest.raises(ApiError):  # the owner's own device cannot approve
        device.call("POST", f"/v1/spends/{spend['spend_id']}/approvals", {"decision": "approve"})
    view = second.call("GET", f"/v1/spends/{spend['spend_id']}/approvals")
    assert view["spend"]["external_sat"] == 1_000_000 and view["approvals"] == []
    done = second.call("POST", f"/v1/spends/{spend['spend_id']}/approvals", {"decision": "approve", "note": "ok"})
    assert done["state"] == "broadcast" and done["txid"] in chain_node.rpc().getrawmempool()


def test_staff_approval_and_staff_freeze(app_factory, settings_factory, chain_settings, chain_node, mine):
    staff_key = "s" * 32
    from dataclasses import replace
    app = app_factory(replace(chain_settings, staff_api_keys=(("alice", staff_key),)))
    device = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app))
    device.register()
    phone = PhoneWallet()
    account = create(device, phone)
    fund(chain_node, mine, device, account, "0.3")
    aid = account["account_id"]
    device.call("PUT", f"/v1/accounts/{aid}/policy", {"approvals": {"above_sat": 0, "required": 1, "staff": True}})
    spend, signed = signed_spend(device, phone, account, chain_node)
    assert submit(device, spend, signed)[2]["state"] == "awaiting_approval"
    tc = app.test_client()
    assert tc.post(f"/v1/admin/spends/{spend['spend_id']}/approvals", json={"decision": "approve"}).status_code == 401
    bad = tc.post(f"/v1/admin/spends/{spend['spend_id']}/approvals", json={"decision": "approve"},
                  headers={"Authorization": "Bearer " + "x" * 32})
    assert bad.status_code == 401 and bad.json["error"]["code"] == "staff_unauthorized"
    auth = {"Authorization": f"Bearer {staff_key}"}
    assert [s["spend_id"] for s in tc.get("/v1/admin/spends", headers=auth).json] == [spend["spend_id"]]
    ok = tc.post(f"/v1/admin/spends/{spend['spend_id']}/approvals", json={"decision": "approve"}, headers=auth)
    assert ok.status_code == 200 and ok.json["state"] == "broadcast"
    frozen = tc.post(f"/v1/admin/accounts/{aid}/freeze", json={"frozen": True, "reason": "customer call"},
                     headers=auth)
    assert frozen.status_code == 200 and frozen.json["rules"]["staff_frozen"] is True
    # the owner cannot lift a staff freeze through a policy change
    after = device.call("PUT", f"/v1/accounts/{aid}/policy", {"frozen": False})
    assert after["rules"]["staff_frozen"] is True
