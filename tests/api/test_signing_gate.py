"""The signing gate over HTTP: the three bypasses of the security review (H1, H2, M1)
are refused, and held spends are re-decided at once when the account freezes or the
policy tightens. The clock of jobs is passed in; "an hour after the deadline" is made by
moving the stored deadline back."""
from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from sqlalchemy import update

from audit.model import AuditEvent
from client.phone import PhoneWallet
from client.sdk import CustosClient, DeviceKey
from cosigner.model import Spend
from store.base import utcnow
from store.session import session_scope
from tests.api.accounts_kit import create, fund
from tests.api.test_policy import run_due_jobs, signed_spend, submit
from tests.conftest import flask_transport

STAFF_KEY = "k" * 32
STAFF = {"Authorization": f"Bearer {STAFF_KEY}"}


@pytest.fixture
def gate_app(app_factory, chain_settings):
    return app_factory(replace(chain_settings, staff_api_keys=(("alice", STAFF_KEY),)))


def _client(app):
    c = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app))
    c.register()
    return c


@pytest.fixture
def owner(gate_app, chain_node, mine):
    device, phone = _client(gate_app), PhoneWallet()
    account = create(device, phone)
    fund(chain_node, mine, device, account, "0.5")
    return device, phone, account


def _mempool(chain_node) -> set:
    return set(chain_node.rpc().getrawmempool())


def _state(device, spend) -> dict:
    return device.call("GET", f"/v1/spends/{spend['spend_id']}")


def _approve(client, spend):
    return client.request("POST", f"/v1/spends/{spend['spend_id']}/approvals", {"decision": "approve"})


def _store_without_review(settings, account_id: str, **rules) -> None:
    """A new policy version written straight to the table, skipping the review of held
    spends: what the gate itself must catch at the moment of signing."""
    from cosigner.model import AccountPolicy
    with session_scope(settings.database_url) as s:
        latest = s.query(AccountPolicy).filter_by(account_id=account_id).order_by(AccountPolicy.version.desc()).first()
        s.add(AccountPolicy(account_id=account_id, version=latest.version + 1, rules={**latest.rules, **rules},
                            created_by="test", created_at=utcnow()))


def _with_approver(gate_app, device, account):
    approver = _client(gate_app)
    device.call("PUT", f"/v1/accounts/{account['account_id']}/policy",
                {"approvals": {"above_sat": 0, "required": 1, "devices": [approver.device_id]}})
    return approver


# -- H1: an approval cosigns after a freeze --------------------------------------------------------
def test_h1_device_approval_after_owner_freeze_is_refused(gate_app, owner, chain_node):
    device, phone, account = owner
    approver = _with_approver(gate_app, device, account)
    spend, signed = signed_spend(device, phone, account, chain_node)
    assert submit(device, spend, signed)[2]["state"] == "awaiting_approval"
    device.call("POST", f"/v1/accounts/{account['account_id']}/freeze", {"frozen": True})
    # the freeze re-decided the held spend at once: the owner sees it will not go out
    assert _state(device, spend)["state"] == "denied"
    before = _mempool(chain_node)
    status, _, body = _approve(approver, spend)
    assert status == 409 and body["error"]["code"] == "not_awaiting_approval"
    assert _mempool(chain_node) == before and _state(device, spend)["txid"] is None


def test_h1_approval_refused_when_frozen_between_hold_and_approval(gate_app, owner, chain_node, chain_settings):
    """Even if the held spend was not re-decided (a freeze written by another path), the
    approval itself goes through the gate, which sees the freeze."""
    device, phone, account = owner
    approver = _with_approver(gate_app, device, account)
    spend, signed = signed_spend(device, phone, account, chain_node)
    assert submit(device, spend, signed)[2]["state"] == "awaiting_approval"
    _store_without_review(chain_settings, account["account_id"], frozen=True)
    before = _mempool(chain_node)
    status, _, body = _approve(approver, spend)
    assert status == 422 and body["error"]["code"] == "policy_denied"
    assert {"rule": "frozen", "by": "owner"} in body["error"]["details"]["reasons"]
    assert _mempool(chain_node) == before and _state(device, spend)["state"] == "denied"


def test_h1_staff_approval_after_staff_freeze_is_refused(gate_app, chain_node, mine):
    device, phone = _client(gate_app), PhoneWallet()
    account = create(device, phone)
    fund(chain_node, mine, device, account, "0.3")
    aid = account["account_id"]
    device.call("PUT", f"/v1/accounts/{aid}/policy", {"approvals": {"above_sat": 0, "required": 1, "staff": True}})
    spend, signed = signed_spend(device, phone, account, chain_node)
    assert submit(device, spend, signed)[2]["state"] == "awaiting_approval"
    tc = gate_app.test_client()
    assert tc.post(f"/v1/admin/accounts/{aid}/freeze", json={"frozen": True, "reason": "customer call"},
                   headers=STAFF).status_code == 200
    before = _mempool(chain_node)
    ok = tc.post(f"/v1/admin/spends/{spend['spend_id']}/approvals", json={"decision": "approve"}, headers=STAFF)
    assert ok.status_code == 409
    assert _mempool(chain_node) == before
    got = _state(device, spend)
    assert got["state"] == "denied" and {"rule": "frozen", "by": "staff"} in got["policy_preview"]["reasons"]


def test_h1_approval_after_its_deadline_is_refused_before_the_job_runs(gate_app, owner, chain_node,
                                                                      chain_settings):
    device, phone, account = owner
    approver = _with_approver(gate_app, device, account)
    spend, signed = signed_spend(device, phone, account, chain_node)
    assert submit(device, spend, signed)[2]["state"] == "awaiting_approval"
    with session_scope(chain_settings.database_url) as s:  # an hour after the deadline, job not run
        s.execute(update(Spend).where(Spend.id == spend["spend_id"])
                  .values(approval_expires_at=utcnow() - dt.timedelta(hours=1)))
    before = _mempool(chain_node)
    status, _, body = _approve(approver, spend)
    assert status == 409 and body["error"]["code"] == "approval_expired"
    assert _mempool(chain_node) == before
    assert _state(device, spend)["state"] == "expired"
    status, _, body = _approve(approver, spend)  # and it stays refused
    assert status == 409 and body["error"]["code"] == "approval_expired"


# -- H2: a pending loosening change lifts a later freeze -----------------------------------------
def test_h2_pending_loosening_cannot_lift_a_later_freeze(owner, chain_node, chain_settings):
    device, phone, account = owner
    aid = account["account_id"]
    device.call("PUT", f"/v1/accounts/{aid}/policy", {"max_per_tx_sat": 100_000})
    loose = device.call("PUT", f"/v1/accounts/{aid}/policy", {"max_per_tx_sat": 50_000_000})
    effective = dt.datetime.fromisoformat(loose["pending_change"]["effective_at"])
    device.call("POST", f"/v1/accounts/{aid}/freeze", {"frozen": True})
    run_due_jobs(chain_settings, effective + dt.timedelta(seconds=1))
    rules = device.call("GET", f"/v1/accounts/{aid}/policy")["rules"]
    assert rules["max_per_tx_sat"] == 50_000_000 and rules["frozen"] is True  # applied as a diff
    spend, signed = signed_spend(device, phone, account, chain_node, amount=20_000_000)
    before = _mempool(chain_node)
    status, _, body = submit(device, spend, signed)
    assert status == 422 and body["error"]["details"]["reasons"] == [{"rule": "frozen", "by": "owner"}]
    assert _mempool(chain_node) == before


def test_h2_pending_loosening_cannot_undo_a_later_tightening_or_staff_freeze(gate_app, owner, chain_settings):
    device, _, account = owner
    aid = account["account_id"]
    device.call("PUT", f"/v1/accounts/{aid}/policy", {"max_per_tx_sat": 100_000})
    loose = device.call("PUT", f"/v1/accounts/{aid}/policy", {"max_per_tx_sat": 50_000_000})
    effective = dt.datetime.fromisoformat(loose["pending_change"]["effective_at"])
    # after the change was asked for: a daily limit (tightening) and a staff freeze
    device.call("PUT", f"/v1/accounts/{aid}/policy",
                {"max_per_tx_sat": 100_000, "limits": [{"window": "24h", "max_sat": 30_000}]})
    assert gate_app.test_client().post(f"/v1/admin/accounts/{aid}/freeze", json={"frozen": True, "reason": "customer call"},
                                       headers=STAFF).status_code == 200
    run_due_jobs(chain_settings, effective + dt.timedelta(seconds=1))
    rules = device.call("GET", f"/v1/accounts/{aid}/policy")["rules"]
    assert rules["max_per_tx_sat"] == 50_000_000
    assert rules["limits"] == [{"window": "24h", "max_sat": 30_000}] and rules["staff_frozen"] is True


# -- M1: a delayed spend ignores a tightening -------------------------------------------------------
def test_m1_delayed_spend_obeys_a_later_tightening(gate_app, owner, chain_node, chain_settings):
    device, phone, account = owner
    aid = account["account_id"]
    device.call("PUT", f"/v1/accounts/{aid}/policy", {"delay_all": True})
    spend, signed = signed_spend(device, phone, account, chain_node)
    held = submit(device, spend, signed)[2]
    assert held["state"] == "delayed"
    original = dt.datetime.fromisoformat(held["release_at"])
    approver = _client(gate_app)
    device.call("PUT", f"/v1/accounts/{aid}/policy",
                {"delay_all": True, "delay_seconds": 7 * 86400,
                 "approvals": {"above_sat": 0, "required": 1, "devices": [approver.device_id]}})
    # re-decided at once: it now waits for the approval (and then for the 7-day delay)
    now = _state(device, spend)
    assert now["state"] == "awaiting_approval"
    before = _mempool(chain_node)
    run_due_jobs(chain_settings, original)  # the original release time: the release job is due
    assert _mempool(chain_node) == before and _state(device, spend)["state"] == "awaiting_approval"
    done = approver.call("POST", f"/v1/spends/{spend['spend_id']}/approvals", {"decision": "approve"})
    assert done["state"] == "delayed" and done["txid"] is None
    later = dt.datetime.fromisoformat(done["release_at"])
    assert later - original == dt.timedelta(days=6)  # 7 days from the submit, like the first 24 h
    run_due_jobs(chain_settings, later - dt.timedelta(minutes=1))
    assert _mempool(chain_node) == before
    run_due_jobs(chain_settings, later + dt.timedelta(seconds=1))
    sent = _state(device, spend)
    assert sent["state"] == "broadcast" and sent["txid"] in _mempool(chain_node)


def test_an_approval_by_a_device_revoked_since_no_longer_counts(gate_app, owner, chain_node, chain_settings):
    """The approver's phone was stolen and revoked after it approved: at release the gate
    counts approvals of now, so the spend waits for a valid one again."""
    device, phone, account = owner
    aid = account["account_id"]
    approver, other = _client(gate_app), _client(gate_app)
    device.call("PUT", f"/v1/accounts/{aid}/policy",
                {"delay_all": True, "approvals": {"above_sat": 0, "required": 1,
                                                  "devices": [approver.device_id, other.device_id]}})
    spend, signed = signed_spend(device, phone, account, chain_node)
    assert submit(device, spend, signed)[2]["state"] == "awaiting_approval"
    approved = approver.call("POST", f"/v1/spends/{spend['spend_id']}/approvals", {"decision": "approve"})
    assert approved["state"] == "delayed"
    approver.call("DELETE", "/v1/devices/me")
    before = _mempool(chain_node)
    run_due_jobs(chain_settings, dt.datetime.fromisoformat(approved["release_at"]) + dt.timedelta(seconds=1))
    assert _mempool(chain_node) == before and _state(device, spend)["state"] == "awaiting_approval"
    done = other.call("POST", f"/v1/spends/{spend['spend_id']}/approvals", {"decision": "approve"})
    assert done["state"] == "delayed"                 # a valid approval; the delay still counts from the submit


def test_m1_release_job_re_holds_when_the_review_did_not_run(owner, chain_node, chain_settings):
    """The release itself re-decides: a longer delay written without the review holds the
    spend again with the new time instead of broadcasting it at the old one."""
    device, phone, account = owner
    aid = account["account_id"]
    device.call("PUT", f"/v1/accounts/{aid}/policy", {"delay_all": True})
    spend, signed = signed_spend(device, phone, account, chain_node)
    original = dt.datetime.fromisoformat(submit(device, spend, signed)[2]["release_at"])
    _store_without_review(chain_settings, aid, delay_seconds=7 * 86400)
    before = _mempool(chain_node)
    run_due_jobs(chain_settings, original + dt.timedelta(seconds=1))
    got = _state(device, spend)
    assert _mempool(chain_node) == before and got["state"] == "delayed"
    assert dt.datetime.fromisoformat(got["release_at"]) - original == dt.timedelta(days=6)


def test_tightening_denies_held_spends_at_once_and_says_so(owner, chain_node, chain_settings):
    device, phone, account = owner
    aid = account["account_id"]
    device.call("PUT", f"/v1/accounts/{aid}/policy", {"delay_all": True})
    spend, signed = signed_spend(device, phone, account, chain_node, amount=1_000_000)
    assert submit(device, spend, signed)[2]["state"] == "delayed"
    device.call("PUT", f"/v1/accounts/{aid}/policy",
                {"delay_all": True, "max_per_tx_sat": 500_000})
    got = _state(device, spend)
    assert got["state"] == "denied"
    assert got["policy_preview"]["reasons"][0]["rule"] == "max_per_tx"
    with session_scope(chain_settings.database_url) as s:
        actions = [e.action for e in s.query(AuditEvent).filter_by(subject=spend["spend_id"])]
    assert actions.count("spend.decision") == 2  # at submit, and the review's refusal


def test_release_job_refuses_a_frozen_account_even_without_the_review(owner, chain_node, chain_settings):
    """The release re-decides on its own: a freeze stored without the review still stops it."""
    device, phone, account = owner
    aid = account["account_id"]
    device.call("PUT", f"/v1/accounts/{aid}/policy", {"delay_all": True})
    spend, signed = signed_spend(device, phone, account, chain_node)
    release_at = dt.datetime.fromisoformat(submit(device, spend, signed)[2]["release_at"])
    _store_without_review(chain_settings, aid, staff_frozen=True)
    before = _mempool(chain_node)
    run_due_jobs(chain_settings, release_at + dt.timedelta(seconds=1))
    got = _state(device, spend)
    assert _mempool(chain_node) == before and got["state"] == "denied"
    assert {"rule": "frozen", "by": "staff"} in got["policy_preview"]["reasons"]


def test_review_keeps_the_configured_reservation_margin(app_factory, chain_settings, chain_node, mine):
    """A tightening that makes a held spend wait longer keeps its coins reserved for
    SPEND_RESERVATION_TTL past the new release time, not for the built-in default."""
    settings = replace(chain_settings, spend_reservation_ttl=3600)
    app = app_factory(settings)
    device, phone = _client(app), PhoneWallet()
    account = create(device, phone)
    fund(chain_node, mine, device, account, "0.5")
    aid = account["account_id"]
    device.call("PUT", f"/v1/accounts/{aid}/policy", {"delay_all": True})
    spend, signed = signed_spend(device, phone, account, chain_node)
    assert submit(device, spend, signed)[2]["state"] == "delayed"
    device.call("PUT", f"/v1/accounts/{aid}/policy", {"delay_all": True, "delay_seconds": 7 * 86400})
    with session_scope(settings.database_url) as s:
        row = s.get(Spend, spend["spend_id"])
        assert row.state == "delayed" and row.release_at - row.decided_at == dt.timedelta(days=7)
        assert row.reserved_until - row.release_at == dt.timedelta(seconds=3600)


# -- out-of-band verification (issue #17): a confirmation is one more hold, decided now --------
def _verified_owner(gate_app, owner, chain_settings):
    from tests.api import verification_kit as vk
    device, phone, account = owner
    totp = vk.with_totp(device, account)
    device.call("PUT", f"/v1/accounts/{account['account_id']}/policy", {"verify": {"above_sat": 0, "channel": "totp"}})
    return totp


def test_verification_after_a_staff_freeze_is_refused(gate_app, owner, chain_node, chain_settings):
    from tests.api import verification_kit as vk
    device, phone, account = owner
    totp = _verified_owner(gate_app, owner, chain_settings)
    spend, signed = signed_spend(device, phone, account, chain_node)
    assert submit(device, spend, signed)[2]["state"] == "awaiting_verification"
    tc = gate_app.test_client()
    assert tc.post(f"/v1/admin/accounts/{account['account_id']}/freeze", json={"frozen": True, "reason": "call"},
                   headers=STAFF).status_code == 200
    assert _state(device, spend)["state"] == "denied"              # the freeze re-decided it at once
    before = _mempool(chain_node)
    status, _, body = device.request("POST", f"/v1/spends/{spend['spend_id']}/verification",
                                     {"code": vk.totp_code(chain_settings, account["account_id"], totp)})
    assert status == 404 and body["error"]["code"] == "verification_not_found"
    assert _mempool(chain_node) == before and _state(device, spend)["txid"] is None


def test_verification_sees_a_freeze_written_without_review(gate_app, owner, chain_node, chain_settings):
    from tests.api import verification_kit as vk
    device, phone, account = owner
    totp = _verified_owner(gate_app, owner, chain_settings)
    spend, signed = signed_spend(device, phone, account, chain_node)
    assert submit(device, spend, signed)[2]["state"] == "awaiting_verification"
    _store_without_review(chain_settings, account["account_id"], staff_frozen=True)
    before = _mempool(chain_node)
    status, _, body = device.request("POST", f"/v1/spends/{spend['spend_id']}/verification",
                                     {"code": vk.totp_code(chain_settings, account["account_id"], totp)})
    assert status == 422 and body["error"]["code"] == "policy_denied"
    assert {"rule": "frozen", "by": "staff"} in body["error"]["details"]["reasons"]
    assert _mempool(chain_node) == before and _state(device, spend)["state"] == "denied"


def test_verification_on_a_channel_the_policy_no_longer_accepts_does_not_sign(gate_app, owner, chain_node,
                                                                               chain_settings):
    """Confirmed by TOTP, but the policy now demands e-mail: the gate asks again (state
    of now), it does not sign on the old confirmation."""
    from tests.api import verification_kit as vk
    device, phone, account = owner
    totp = _verified_owner(gate_app, owner, chain_settings)
    assert vk.with_email(device, chain_settings, account)["state"] == "waiting"   # a second channel waits
    vk.activate_waiting(device, chain_settings, account, totp)
    device.call("PUT", f"/v1/accounts/{account['account_id']}/policy", {"delay_all": True,
                                                                        "verify": {"above_sat": 0, "channel": "totp"}})
    spend, signed = signed_spend(device, phone, account, chain_node)
    assert submit(device, spend, signed)[2]["state"] == "awaiting_verification"
    held = device.call("POST", f"/v1/spends/{spend['spend_id']}/verification",
                       {"code": vk.totp_code(chain_settings, account["account_id"], totp)})
    assert held["state"] == "delayed"                                # verified; the delay still holds it
    _store_without_review(chain_settings, account["account_id"], verify={"above_sat": 0, "channel": "email"})
    run_due_jobs(chain_settings, utcnow() + dt.timedelta(hours=25))    # the 24 h delay is over
    assert _state(device, spend)["state"] == "awaiting_verification"  # asked again, on e-mail
    assert spend["spend_id"] not in str(_mempool(chain_node))
