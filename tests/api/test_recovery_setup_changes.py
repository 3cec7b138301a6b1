"""Replacing the recovery setup in force waits (privileged action `recovery.replace_setup`):
a phone thief must not delete the operator's share and the contacts' slots the real owner
recovers with, nor point the recovery e-mail at his own address, in one request. The
replacement is announced on the old channels, waits POLICY_LOOSEN_DELAY (and the second
channel when the account has one), can be cancelled, and is decided with the state of the
moment it would apply."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from client.recovery import Recoverer, approve, setup_body, split_recovery
from store.base import utcnow
from store.session import session_scope
from tests.api import verification_kit as vk
from tests.api.recovery_kit import STAFF, account, apply_setup_changes, device, outbox_codes
from tests.api.test_recovery_cases import _verified_case, err, rapp, rsettings, world  # noqa: F401 (fixtures)
from tests.api.test_recovery_flow import _scan_database
from tests.api.test_recovery_hardening import staff_call

THIEF = "thief@example.net"


def _request(world, email: str = THIEF, split=None) -> tuple[dict, object]:
    """A replacement naming only the owner's phone and the operator (the contact dropped)."""
    split = split or split_recovery(world["phone"])
    return setup_body(split, email, [
        {"kind": "device", "device_id": world["old"].device_id, "group_index": 0, "member_index": 0},
        {"kind": "device", "device_id": world["old"].device_id, "group_index": 0, "member_index": 1},
        {"kind": "operator", "group_index": 0, "member_index": 2}]), split


def _ask(world, email: str = THIEF) -> dict:
    out = world["old"].setup(world["aid"], _request(world, email)[0])
    assert out["pending_change"]["state"] == "pending"
    return out


def _when(change: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(change["effective_at"])


def _change(settings, change_id: str):
    from recovery.model import RecoverySetupChange
    with session_scope(settings.database_url) as s:
        row = s.get(RecoverySetupChange, change_id)
        return row.state, row.closed_reason


def _pushed(settings, device_id: str) -> set[str]:
    from messaging.model import Notification
    with session_scope(settings.database_url) as s:
        return set(s.scalars(select(Notification.kind).where(Notification.device_id == device_id)))


def _audit(settings, subject: str) -> list[str]:
    from audit.model import AuditEvent
    with session_scope(settings.database_url) as s:
        return list(s.scalars(select(AuditEvent.action).where(AuditEvent.subject == subject,
                                                              AuditEvent.action.like("recovery.setup%"))
                              .order_by(AuditEvent.seq)))


def test_a_replacement_waits_its_delay_and_is_announced_on_the_old_channels(world, rsettings):
    old, aid = world["old"], world["aid"]
    before = old.status(aid)
    asked_at = utcnow()
    out = _ask(world)
    change = out["pending_change"]
    assert out["setup_id"] == before["setup_id"] and out["holders"] == before["holders"]   # still in force
    assert (change["holders"], change["devices"], change["email_changed"]) == (3, 2, True)
    assert change["groups"] == [{"threshold": 2, "count": 3}]
    assert _when(change) >= asked_at + dt.timedelta(hours=72) - dt.timedelta(seconds=5)
    assert old.status(aid)["pending_change"]["change_id"] == change["change_id"]
    # announced to the owner's device and to the recovery e-mail in force, without the new address
    assert "recovery_setup_change_pending" in _pushed(rsettings, old.device_id)
    [notice] = vk.mails(rsettings, world["email"], "recovery.setup_change")
    assert "cancel" in notice.body and THIEF not in notice.body and "changes" in notice.body
    assert vk.mails(rsettings, THIEF) == []
    # until then the old setup recovers: its e-mail still gets the recovery code
    Recoverer(world["new"]).start(world["email"])
    assert len(outbox_codes(rsettings, world["email"])) == 1
    assert apply_setup_changes(rsettings, aid, _when(change) - dt.timedelta(seconds=1)) == 0
    assert old.status(aid)["setup_id"] == before["setup_id"]
    assert apply_setup_changes(rsettings, aid, _when(change)) == 1
    after = old.status(aid)
    assert after["setup_id"] != before["setup_id"] and after["pending_change"] is None
    assert {h["device_id"] for h in after["holders"] if h["kind"] == "device"} == {old.device_id}
    assert "recovery_setup_replaced" in _pushed(rsettings, old.device_id)
    assert _change(rsettings, change["change_id"]) == ("applied", None)
    assert _audit(rsettings, aid) == ["recovery.setup", "recovery.setup_change_pending", "recovery.setup_replaced"]
    assert apply_setup_changes(rsettings, aid, _when(change) + dt.timedelta(days=1)) == 0       # once


def test_the_owner_cancels_a_pending_replacement(world, rsettings, rapp):
    old, aid = world["old"], world["aid"]
    before = old.status(aid)["setup_id"]
    change = _ask(world)["pending_change"]
    path = f"/v1/accounts/{aid}/recovery/changes/{change['change_id']}"
    cancelled = old.call("DELETE", path)
    assert (cancelled["state"], cancelled["closed_reason"]) == ("cancelled", "cancelled_by_owner")
    assert old.call("DELETE", path)["state"] == "cancelled"                                   # idempotent
    assert apply_setup_changes(rsettings, aid, _when(change) + dt.timedelta(days=1)) == 0
    assert old.status(aid)["setup_id"] == before and old.status(aid)["pending_change"] is None
    # nobody else's change, and nobody else's account
    stranger = device(rapp)
    theirs = account(stranger, world["phone"].__class__(), "theirs")["account_id"]
    e = err(stranger.call, "DELETE", f"/v1/accounts/{theirs}/recovery/changes/{change['change_id']}")
    assert (e.status, e.code) == (404, "setup_change_not_found")
    e = err(stranger.call, "DELETE", path)
    assert (e.status, e.code) == (404, "account_not_found")
    e = err(old.call, "DELETE", f"/v1/accounts/{aid}/recovery/changes/{'x' * 300}")
    assert (e.status, e.code) == (404, "setup_change_not_found")


def test_a_newer_replacement_supersedes_the_pending_one(world, rsettings):
    from tests.api.test_policy import run_due_jobs
    old, aid = world["old"], world["aid"]
    first = _ask(world)["pending_change"]
    second = _ask(world, email=world["email"])["pending_change"]
    assert second["change_id"] != first["change_id"] and second["email_changed"] is False
    assert _change(rsettings, first["change_id"]) == ("superseded", "newer_request")
    before = old.status(aid)["setup_id"]
    run_due_jobs(rsettings, _when(second))          # both jobs are due: the superseded one does nothing
    assert _change(rsettings, first["change_id"])[0] == "superseded"
    assert _change(rsettings, second["change_id"]) == ("applied", None)
    assert old.status(aid)["setup_id"] != before


@pytest.mark.parametrize("by", ["owner", "staff"])
def test_a_freeze_before_the_moment_voids_the_replacement(world, rsettings, rapp, by):
    """The owner's panic freeze (the phone was stolen) and a staff freeze (support sees the
    pending replacement on the account, with counts only) both win: the change is void when
    it would apply, and the setup stays."""
    old, aid = world["old"], world["aid"]
    before = old.status(aid)["setup_id"]
    change = _ask(world)["pending_change"]
    if by == "owner":
        old.call("POST", f"/v1/accounts/{aid}/freeze", {"frozen": True})
    else:
        status, detail = staff_call(rapp, "GET", f"/v1/admin/accounts/{aid}")
        assert status == 200 and detail["recovery_setup_change"]["change_id"] == change["change_id"]
        assert detail["recovery_setup_change"]["email_changed"] is True and THIEF not in str(detail)
        frozen = rapp.test_client().post(f"/v1/admin/accounts/{aid}/freeze", json={"frozen": True, "reason": "call"},
                                         headers={"Authorization": f"Bearer {STAFF['alice']}"})
        assert frozen.status_code == 200, frozen.json
    assert apply_setup_changes(rsettings, aid, _when(change)) == 0
    assert _change(rsettings, change["change_id"]) == ("void", "account_frozen")
    assert old.status(aid)["setup_id"] == before
    assert "recovery_setup_change_void" in _pushed(rsettings, old.device_id)


def test_a_recovery_verified_meanwhile_voids_the_replacement(world, rsettings):
    old, aid = world["old"], world["aid"]
    before = old.status(aid)["setup_id"]
    change = _ask(world)["pending_change"]
    _rec, case = _verified_case(world, rsettings)
    assert apply_setup_changes(rsettings, aid, _when(change)) == 0
    assert _change(rsettings, change["change_id"]) == ("void", "recovery_in_progress")
    assert old.status(aid)["setup_id"] == before
    assert world["new"].case(case["case_id"])["state"] == "collecting"
    # asking while that case is open is refused at once
    e = err(old.setup, aid, _request(world)[0])
    assert (e.status, e.code) == (409, "recovery_in_progress")


def test_a_completed_recovery_voids_the_old_owners_replacement(world, rsettings, rapp):
    """The thief asked with the stolen phone; the owner recovered the account on a new
    phone before the moment: the old owner's change is void (`owner_changed`)."""
    old, aid, new = world["old"], world["aid"], world["new"]
    before = old.status(aid)["setup_id"]
    change = _ask(world)["pending_change"]
    rec = Recoverer(new)
    cid = rec.start(world["email"])["case_id"]
    assert staff_call(rapp, "POST", f"/v1/admin/recoveries/{cid}/verify-identity")[0] == 200
    approve(world["contact"], world["contact"].requests()[0], world["split"].share(0, 1))
    assert staff_call(rapp, "POST", f"/v1/admin/recoveries/{cid}/approve-release")[0] == 200
    assert staff_call(rapp, "POST", f"/v1/admin/recoveries/{cid}/approve-release", who="bob")[0] == 200
    assert rec.complete(new.case(cid), world["phone"].recovery)["state"] == "completed"
    assert apply_setup_changes(rsettings, aid, _when(change)) == 0
    assert _change(rsettings, change["change_id"]) == ("void", "owner_changed")
    assert new.status(aid)["setup_id"] == before


def test_a_holder_revoked_meanwhile_voids_the_replacement(world, rsettings):
    old, aid, contact = world["old"], world["aid"], world["contact"]
    before = old.status(aid)["setup_id"]
    split = split_recovery(world["phone"])
    body = setup_body(split, world["email"], [
        {"kind": "device", "device_id": contact.device_id, "group_index": 0, "member_index": 0},
        {"kind": "device", "device_id": old.device_id, "group_index": 0, "member_index": 1},
        {"kind": "operator", "group_index": 0, "member_index": 2}])
    change = old.setup(aid, body)["pending_change"]
    contact.call("DELETE", "/v1/devices/me")
    assert apply_setup_changes(rsettings, aid, _when(change)) == 0
    assert _change(rsettings, change["change_id"]) == ("void", "invalid_holder")
    assert old.status(aid)["setup_id"] == before


def _oob(owner, aid) -> dict | None:
    pending = owner.call("GET", f"/v1/accounts/{aid}/verification")["pending"]
    return next((r for r in pending if r["subject_kind"] == "recovery_setup_change"), None)


def test_with_a_verification_channel_it_also_waits_for_the_second_channel(world, rsettings):
    from tests.api.test_policy import run_due_jobs
    old, aid = world["old"], world["aid"]
    totp = vk.with_totp(old, {"account_id": aid})
    change = _ask(world)["pending_change"]
    req = _oob(old, aid)
    assert req is not None and req["action"] == "recovery.replace_setup"
    assert apply_setup_changes(rsettings, aid, _when(change)) == 0          # the delay is over, the confirmation is not
    assert _change(rsettings, change["change_id"]) == ("pending", None)
    out = old.call("POST", f"/v1/verifications/{req['request_id']}", {"code": vk.totp_code(rsettings, aid, totp)})
    assert out["request"]["state"] == "confirmed"
    assert apply_setup_changes(rsettings, aid, _when(change)) == 1
    # left unconfirmed, the request expires and cancels the change with it
    before = old.status(aid)["setup_id"]
    again = _ask(world, email=world["email"])["pending_change"]
    run_due_jobs(rsettings, utcnow() + dt.timedelta(minutes=20))
    assert _change(rsettings, again["change_id"]) == ("cancelled", "verification_expired")
    assert apply_setup_changes(rsettings, aid, _when(again)) == 0
    assert old.status(aid)["setup_id"] == before


def test_the_emailed_cancel_link_cancels_it_and_the_page_shows_no_secret(world, rsettings, rapp):
    old, aid = world["old"], world["aid"]
    vk.with_email(old, rsettings, {"account_id": aid})
    body, split = _request(world)
    change = old.setup(aid, body)["pending_change"]
    links = vk.links(rsettings)
    tc = rapp.test_client()
    page = tc.get(vk.page_path(links["cancel"]))
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Replace the recovery setup" in html
    assert THIEF not in html and world["email"] not in html
    assert not any(" ".join(m.split()[:3]) in html for g in split.groups for m in g)
    posted = tc.post("/verify", data={**vk.query(links["cancel"]), "csrf_token": vk.csrf_of(html)})
    assert posted.status_code == 200
    assert _change(rsettings, change["change_id"]) == ("cancelled", "verification_cancelled_by_link")
    assert apply_setup_changes(rsettings, aid, _when(change) + dt.timedelta(days=1)) == 0
    confirm = tc.get(vk.page_path(links["confirm"]))
    assert confirm.status_code in (404, 410)                                 # the links are spent


def test_a_pending_replacement_keeps_its_share_and_address_sealed(world, rsettings):
    body, split = _request(world)
    world["old"].setup(world["aid"], body)
    needles = [THIEF, body["operator_share"]] + [" ".join(m.split()[:4]) for g in split.groups for m in g]
    _scan_database(rsettings.database_url, needles)
