"""Recovery through the API without a chain: setup validation and atomic re-setup,
no-enumeration, OTP failure, cancel mid-delay, the staff path, custody checks, backups."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
from sqlalchemy import select

from client.phone import PhoneWallet
from client.recovery import Recoverer, approve, custody_signature, setup_body, split_recovery
from client.sdk import ApiError
from store.base import utcnow
from store.session import session_scope
from tests.api.recovery_kit import (STAFF_ENV, account, advance, device, outbox_codes, replaced, setup_2of3,
                                    staff_call)


@pytest.fixture
def rsettings(settings_factory, master_key):
    return settings_factory(STAFF_API_KEYS=STAFF_ENV, MASTER_KEY=master_key)


@pytest.fixture
def rapp(app_factory, rsettings):
    return app_factory(rsettings)


@pytest.fixture
def world(rapp):
    """old phone with an account and a 2-of-3 setup, a contact, a new phone."""
    old, contact, new = device(rapp), device(rapp), device(rapp)
    phone = PhoneWallet()
    acct = account(old, phone)
    email = "owner@example.org"
    split, body, _ = setup_2of3(old, contact.device_id, acct["account_id"], phone, email)
    return dict(old=old, contact=contact, new=new, phone=phone, aid=acct["account_id"], split=split, body=body,
                email=email)


def err(fn, *a, **kw) -> ApiError:
    with pytest.raises(ApiError) as info:
        fn(*a, **kw)
    return info.value


def _verified_case(world, rsettings):
    rec = Recoverer(world["new"])
    case = rec.start(world["email"])
    return rec, world["new"].otp(case["case_id"], outbox_codes(rsettings, world["email"])[-1])


# -- setup -------------------------------------------------------------------------------
def test_setup_refuses_bad_shares_and_second_operator_share(world):
    old, aid, body = world["old"], world["aid"], world["body"]
    words = body["operator_share"].split()
    cases = {
        "invalid_share": {**body, "operator_share": " ".join(words[:-1] + ["acid" if words[-1] != "acid" else "axis"])},
        "share_mismatch": {**body, "operator_share": split_recovery(PhoneWallet()).share(0, 2)},
        "second_operator_share": {**body, "operator_shares": [world["split"].share(0, 0)]},
        "invalid_email": {**body, "email": "not-an-email"},
    }
    two_ops = [dict(h) for h in body["holders"]]
    two_ops[0] = {**two_ops[0], "kind": "operator", "device_id": None}
    cases["second_operator_share"] = {**body, "holders": two_ops}
    wrong_key = [dict(h) for h in body["holders"]]
    wrong_key[2]["custody_public_key"] = wrong_key[1]["custody_public_key"]
    cases["custody_key_mismatch"] = {**body, "holders": wrong_key}
    for code, bad in cases.items():
        e = err(old.setup, aid, bad)
        assert (e.status, e.code) == (400, code), code
        for i in range(len(words) - 2):  # no run of share words (single words may be ordinary English)
            assert " ".join(words[i:i + 3]) not in e.message
    assert old.status(aid)["setup_id"]  # the first setup is untouched


def test_resetup_replaces_atomically(world, rsettings):
    from recovery.model import RecoveryHolder, RecoverySetup
    old, aid = world["old"], world["aid"]
    before = old.status(aid)["setup_id"]
    split = split_recovery(world["phone"], groups=[(3, 5)])
    holders = [{"kind": "device", "device_id": world["contact"].device_id, "group_index": 0, "member_index": i}
               for i in range(4)] + [{"kind": "operator", "group_index": 0, "member_index": 4}]
    after = replaced(old, rsettings, aid, setup_body(split, world["email"], holders))
    assert after["setup_id"] != before and after["scheme"]["groups"] == [{"threshold": 3, "count": 5}]
    assert after["pending_change"] is None
    with session_scope(rsettings.database_url) as s:
        assert [r.id for r in s.scalars(select(RecoverySetup))] == [after["setup_id"]]
        assert s.scalar(select(RecoveryHolder).where(RecoveryHolder.setup_id == before)) is None


# -- start / OTP --------------------------------------------------------------------------
def test_same_answer_for_known_and_unknown_email(world, rsettings, rapp):
    other = device(rapp)
    a = Recoverer(world["new"]).start(world["email"])
    b = Recoverer(other).start("nobody@example.org")
    varying = ("case_id", "otp_expires_at", "expires_at")
    assert {k: v for k, v in a.items() if k not in varying} == {k: v for k, v in b.items() if k not in varying}
    assert set(a) == set(b) and "account_id" not in a
    assert outbox_codes(rsettings, "nobody@example.org") == [] and len(outbox_codes(rsettings, world["email"])) == 1
    right = outbox_codes(rsettings, world["email"])[0]
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    ea, eb = err(world["new"].otp, a["case_id"], wrong), err(other.otp, b["case_id"], wrong)
    assert (ea.status, ea.code, ea.details) == (eb.status, eb.code, eb.details) == (422, "otp_invalid",
                                                                                     {"attempts_left": 4})
    assert {k for k in world["new"].case(a["case_id"])} == {k for k in other.case(b["case_id"])}


def test_five_wrong_codes_fail_the_case(world, rsettings):
    new = world["new"]
    case = Recoverer(new).start(world["email"])
    right = outbox_codes(rsettings, world["email"])[-1]
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    left = [err(new.otp, case["case_id"], wrong).details.get("attempts_left") for _ in range(4)]
    assert left == [4, 3, 2, 1]
    last = err(new.otp, case["case_id"], wrong)
    assert (last.status, last.code) == (410, "case_failed")
    again = err(new.otp, case["case_id"], right)
    assert (again.status, again.code) == (410, "case_closed")
    assert new.case(case["case_id"])["state"] == "failed"


def test_resend_cooldown(world):
    new = world["new"]
    case = Recoverer(new).start(world["email"])
    e = err(new.call, "POST", f"/v1/recoveries/{case['case_id']}/otp/resend")
    assert (e.status, e.code) == (429, "otp_resend_cooldown")


def test_start_is_rate_limited_per_email(world):
    new = world["new"]
    for _ in range(5):
        Recoverer(new).start(world["email"])
    e = err(Recoverer(new).start, world["email"])
    assert e.status == 429


# -- contest ------------------------------------------------------------------------------
def test_old_phone_cancels_mid_delay_nothing_released(world, rsettings):
    from audit.model import AuditEvent
    rec, case = _verified_case(world, rsettings)
    req = world["contact"].requests()[0]
    approve(world["contact"], req, world["split"].share(0, 1))
    assert world["old"].cancel(case["case_id"], freeze=True)["state"] == "cancelled"
    assert advance(rsettings, case["case_id"], utcnow() + dt.timedelta(days=8)) == "cancelled"
    got = world["new"].case(case["case_id"])
    assert got["state"] == "cancelled" and got["operator_share_sealed"] is None
    e = err(rec.complete, got, world["phone"].recovery)
    assert e.code == "case_closed"
    with session_scope(rsettings.database_url) as s:
        actions = set(s.scalars(select(AuditEvent.action).where(AuditEvent.action.like("recovery.%"))))
    assert {"recovery.contested", "recovery.freeze_requested", "recovery.cancelled"} <= actions
    assert world["contact"].requests() == []
    # only the account's own device may cancel
    rec2, case2 = _verified_case(world, rsettings)
    assert err(world["contact"].cancel, case2["case_id"]).status == 404


# -- staff --------------------------------------------------------------------------------
def test_staff_verify_and_two_person_early_release(world, rsettings, rapp):
    rec = Recoverer(world["new"])
    case = rec.start(world["email"])
    cid = case["case_id"]
    status, body = staff_call(rapp, "POST", f"/v1/admin/recoveries/{cid}/verify-identity")
    assert status == 200 and body["state"] == "collecting" and body["verified_by"] == "staff:alice"
    approve(world["contact"], world["contact"].requests()[0], world["split"].share(0, 1))
    status, body = staff_call(rapp, "POST", f"/v1/admin/recoveries/{cid}/approve-release")
    assert status == 200 and body["state"] == "waiting"
    status, body = staff_call(rapp, "POST", f"/v1/admin/recoveries/{cid}/approve-release")
    assert (status, body["error"]["code"]) == (409, "staff_approval_conflict")
    assert world["new"].case(cid)["operator_share_sealed"] is None
    status, body = staff_call(rapp, "POST", f"/v1/admin/recoveries/{cid}/approve-release", who="bob")
    assert status == 200 and body["state"] == "released" and body["early_release"] is True
    assert rec.rebuild(world["new"].case(cid)).mnemonic == world["phone"].recovery.mnemonic
    status, body = staff_call(rapp, "GET", f"/v1/admin/recoveries/{cid}")
    actions = [e["action"] for e in body["audit"]]
    assert actions.count("recovery.early_release_approved") == 2 and "recovery.released" in actions
    status, listed = staff_call(rapp, "GET", "/v1/admin/recoveries?state=released")
    assert [c["case_id"] for c in listed["cases"]] == [cid]
    assert staff_call(rapp, "GET", "/v1/admin/recoveries")[0] == 200
    assert rapp.test_client().get("/v1/admin/recoveries").status_code == 401


# -- custody ------------------------------------------------------------------------------
def test_custody_challenge_answer_and_status(world, rsettings):
    from messaging.model import Notification
    from recovery.context import recovery_context
    from recovery.custody import challenge_all
    from recovery.model import RecoveryHolder
    old, contact, aid = world["old"], world["contact"], world["aid"]
    with session_scope(rsettings.database_url) as s:
        assert challenge_all(s, recovery_context(rsettings), utcnow()) == 2
    for client, member in ((contact, 1), (old, 0)):
        [c] = client.custody_challenges()
        bad = err(client.custody_answer, c["holder_id"], custody_signature(world["split"].share(0, 2),
                                                                          c["holder_id"], c["challenge"]))
        assert (bad.status, bad.code) == (422, "proof_invalid")
        client.custody_answer(c["holder_id"], custody_signature(world["split"].share(0, member), c["holder_id"],
                                                                c["challenge"]))
    status = old.status(aid)
    assert status["status"] == "nominal" and all(h["proven"] for h in status["holders"])
    with session_scope(rsettings.database_url) as s:  # a month later the contact's proof has aged out
        for h in s.scalars(select(RecoveryHolder).where(RecoveryHolder.device_id == contact.device_id)):
            h.proven_at = utcnow() - dt.timedelta(days=31)
        challenge_all(s, recovery_context(rsettings), utcnow())
    assert old.status(aid)["status"] == "critical"
    with session_scope(rsettings.database_url) as s:
        kinds = set(s.scalars(select(Notification.kind).where(Notification.device_id == old.device_id)))
    assert "custody_critical" in kinds


# -- backups ------------------------------------------------------------------------------
def _age_backups(rsettings, aid):
    """Make the stored versions two hours old (new versions are limited per hour)."""
    from sqlalchemy import update
    from recovery.model import Backup
    with session_scope(rsettings.database_url) as s:
        s.execute(update(Backup).where(Backup.account_id == aid).values(created_at=utcnow() - dt.timedelta(hours=2)))


def test_backups_versions_digest_and_retention(world, rsettings):
    old, aid = world["old"], world["aid"]
    for v in range(1, 13):
        if v % 5 == 0:
            _age_backups(rsettings, aid)
        old.put_backup(aid, v, f"blob {v}".encode() * 10)
    meta, blob = old.get_backup(aid)
    assert meta["version"] == 12 and blob == b"blob 12" * 10
    assert old.get_backup(aid, 3)[0]["version"] == 3
    assert err(old.get_backup, aid, 2).code == "backup_not_found"            # only the last 10 are kept
    assert err(old.put_backup, aid, 12, b"other").code == "backup_version_conflict"
    assert old.put_backup(aid, 12, b"blob 12" * 10)["version"] == 12           # same upload again: no-op
    e = err(old.call, "PUT", f"/v1/accounts/{aid}/backups",
            {"version": 13, "sha256": hashlib.sha256(b"x").hexdigest(), "blob": base64.b64encode(b"y").decode()})
    assert (e.status, e.code) == (400, "digest_mismatch")
    _age_backups(rsettings, aid)
    big = b"\0" * ((1 << 20) + 1)
    e = err(old.put_backup, aid, 13, big)
    assert (e.status, e.code, e.details) == (422, "validation_error", {"field": "blob", "max_bytes": 1 << 20})
    assert old.put_backup(aid, 13, b"\1" * (1 << 20))["size"] == 1 << 20
    assert err(world["contact"].get_backup, aid).status == 404
