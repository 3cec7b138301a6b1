"""Recovery defects from the security review (issue #14): a setup replaced under an open
case (M2), OTP guessing budgets across cases and workers (M3), expired codes (L8) and
equal work for known and unknown emails (L1)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select

from client.recovery import Recoverer, setup_body, split_recovery
from store.session import session_scope
from tests.api.recovery_kit import advance, apply_setup_changes, outbox_codes, replaced, staff_call
from tests.api.test_recovery_cases import _verified_case, err, rapp, rsettings, world  # noqa: F401 (fixtures)


def _replacement(world) -> dict:
    split = split_recovery(world["phone"])
    return setup_body(split, world["email"], [
        {"kind": "device", "device_id": world["contact"].device_id, "group_index": 0, "member_index": 0},
        {"kind": "device", "device_id": world["old"].device_id, "group_index": 0, "member_index": 1},
        {"kind": "operator", "group_index": 0, "member_index": 2}])


# -- M2: replacing the setup under an open case -----------------------------------------------
def test_replacing_the_setup_is_refused_while_a_verified_case_is_open(world, rsettings):
    old, aid = world["old"], world["aid"]
    _rec, case = _verified_case(world, rsettings)
    before = old.status(aid)["setup_id"]
    e = err(old.setup, aid, _replacement(world))
    assert (e.status, e.code) == (409, "recovery_in_progress")
    assert e.details == {"cases": [case["case_id"]]}
    assert old.status(aid)["setup_id"] == before
    assert world["new"].case(case["case_id"])["state"] == "collecting"
    old.cancel(case["case_id"])                      # the owner contests first, then replaces
    assert replaced(old, rsettings, aid, _replacement(world))["setup_id"] != before


def test_replacing_the_setup_cancels_unverified_cases(world, rsettings):
    old, aid, new = world["old"], world["aid"], world["new"]
    case = Recoverer(new).start(world["email"])
    change = old.setup(aid, _replacement(world))["pending_change"]
    assert new.case(case["case_id"])["state"] == "requested"      # nothing happens before the change applies
    assert apply_setup_changes(rsettings, aid, dt.datetime.fromisoformat(change["effective_at"])) == 1
    assert new.case(case["case_id"])["state"] == "cancelled"
    code = outbox_codes(rsettings, world["email"])[-1]
    e = err(new.otp, case["case_id"], code)
    assert (e.status, e.code) == (410, "case_closed")


def test_a_case_whose_setup_is_gone_closes_instead_of_failing(world, rsettings, rapp):
    """Data from before the fix: the setup was deleted while its case was open. Staff
    early release answers 409 (no 500) and the timed step cancels the case."""
    from recovery.model import RecoveryCase, RecoveryHolder, RecoverySetup
    from store.base import utcnow
    from client.recovery import approve
    _rec, case = _verified_case(world, rsettings)
    cid = case["case_id"]
    approve(world["contact"], world["contact"].requests()[0], world["split"].share(0, 1))
    assert world["new"].case(cid)["state"] == "waiting"
    assert staff_call(rapp, "POST", f"/v1/admin/recoveries/{cid}/approve-release")[0] == 200
    with session_scope(rsettings.database_url) as s:
        setup_id = s.get(RecoveryCase, cid).setup_id
        s.execute(delete(RecoveryHolder).where(RecoveryHolder.setup_id == setup_id))
        s.execute(delete(RecoverySetup).where(RecoverySetup.id == setup_id))
    status, body = staff_call(rapp, "POST", f"/v1/admin/recoveries/{cid}/approve-release", who="bob")
    assert (status, body["error"]["code"]) == (409, "setup_replaced")
    assert advance(rsettings, cid, utcnow()) == "cancelled"
    with session_scope(rsettings.database_url) as s:
        row = s.get(RecoveryCase, cid)
        assert row.closed_reason == "setup_replaced" and row.released_share is None
        assert s.scalar(select(RecoverySetup.id)) is None


# -- M3: the OTP guessing budget spans cases ----------------------------------------------------
def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def _burn_budget(api, email, rsettings, known: bool):
    """Two cases × five wrong codes = the email's budget of 10; returns a third case."""
    from recovery.budget import OTP_GUESS_BUDGET
    assert OTP_GUESS_BUDGET == 10
    for _ in range(2):
        case = Recoverer(api).start(email)
        code = outbox_codes(rsettings, email)[-1] if known else "000000"
        for _ in range(5):
            e = err(api.otp, case["case_id"], _wrong(code))
            assert e.status in (422, 410)
    return Recoverer(api).start(email)


def test_the_budget_spans_cases_and_stops_even_the_right_code(world, rsettings):
    new = world["new"]
    third = _burn_budget(new, world["email"], rsettings, known=True)
    right = outbox_codes(rsettings, world["email"])[-1]
    e = err(new.otp, third["case_id"], right)
    assert (e.status, e.code) == (429, "otp_budget_exhausted")
    assert 3500 < e.details["retry_after"] <= 3600
    case = new.case(third["case_id"])
    assert case["state"] == "requested" and case["otp_attempts_left"] == 5    # nothing was evaluated


def test_the_budget_answers_the_same_for_an_unknown_email(world, rsettings, rapp):
    from tests.api.recovery_kit import device
    other = device(rapp)
    third = _burn_budget(other, "nobody@example.org", rsettings, known=False)
    e = err(other.otp, third["case_id"], "123456")
    assert (e.status, e.code, sorted(e.details)) == (429, "otp_budget_exhausted", ["retry_after"])


def test_the_budget_is_shared_by_every_api_process(world, rsettings, app_factory):
    """A second app (another gunicorn worker: its own in-memory limiter) sees the same budget."""
    from client.recovery import RecoveryClient
    from tests.conftest import flask_transport
    new = world["new"]
    third = _burn_budget(new, world["email"], rsettings, known=True)
    elsewhere = RecoveryClient.like(new)
    elsewhere.transport = flask_transport(app_factory(rsettings))
    e = err(elsewhere.otp, third["case_id"], "123456")
    assert (e.status, e.code) == (429, "otp_budget_exhausted")


# -- L8: an expired code costs no hashing ----------------------------------------------------------
def test_an_expired_code_is_answered_without_argon2(world, rsettings, monkeypatch):
    import datetime as dt
    from recovery import otp
    from recovery.model import RecoveryCase
    case = Recoverer(world["new"]).start(world["email"])
    with session_scope(rsettings.database_url) as s:
        row = s.get(RecoveryCase, case["case_id"])
        row.otp_expires_at = row.otp_sent_at - dt.timedelta(seconds=1)
    calls, real = [], otp.matches
    monkeypatch.setattr(otp, "matches", lambda *a: calls.append(1) or real(*a))   # counts, still hashes
    e = err(world["new"].otp, case["case_id"], "123456")
    assert (e.status, e.code, e.details) == (422, "otp_expired", {"attempts_left": 5})
    assert calls == []


# -- L1: the same work for known and unknown emails -------------------------------------------------
def _statements(rapp, fn) -> list[tuple[str, str]]:
    """(verb, table) of every SQL statement `fn` makes the app run, savepoints left out."""
    import re
    from sqlalchemy import event
    from app.extensions import db
    seen = []

    def record(_conn, _cursor, statement, *_a):
        words = statement.split()
        verb = words[0].upper()
        if verb in ("SAVEPOINT", "RELEASE", "ROLLBACK"):
            return
        table = re.search(r"\b(?:FROM|INTO|UPDATE)\s+\"?(\w+)", statement, re.I)
        seen.append((verb, table.group(1) if table else ""))
    with rapp.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_start_does_the_same_work_for_known_and_unknown_emails(world, rapp):
    from tests.api.recovery_kit import device
    other = device(rapp)
    known = _statements(rapp, lambda: Recoverer(world["new"]).start(world["email"]))
    unknown = _statements(rapp, lambda: Recoverer(other).start("nobody@example.org"))
    assert sorted(known) == sorted(unknown)
    assert ("INSERT", "recovery_mail_outbox") in unknown and ("INSERT", "audit_events") in unknown


def test_the_decoy_work_leaves_no_trace(world, rsettings, rapp):
    from audit.model import AuditEvent
    from recovery.model import MailOutbox
    from tests.api.recovery_kit import device
    from workers.jobs import ScheduledJob
    other = device(rapp)
    with session_scope(rsettings.database_url) as s:
        before = (s.query(AuditEvent).count(), s.query(MailOutbox).count(), s.query(ScheduledJob).count())
    Recoverer(other).start("nobody@example.org")
    with session_scope(rsettings.database_url) as s:
        assert (s.query(AuditEvent).count(), s.query(MailOutbox).count(), s.query(ScheduledJob).count()) == before


# -- issue #15: custody check on demand, the requester withdraws ------------------------------------
def test_the_owner_asks_for_a_custody_check_now_and_challenges_do_not_pile_up(world, rsettings):
    import json
    from messaging.model import Message
    from recovery.notices import SYSTEM_SENDER
    old, contact, aid = world["old"], world["contact"], world["aid"]
    assert old.status(aid)["status"] == "at_risk"
    first = old.call("POST", f"/v1/accounts/{aid}/recovery/custody-check")
    assert first == {"account_id": aid, "challenged": 2, "status": "at_risk"}     # the phone and the contact
    old.call("POST", f"/v1/accounts/{aid}/recovery/custody-check")
    with session_scope(rsettings.database_url) as s:
        bodies = [json.loads(m.ciphertext) for m in s.scalars(select(Message).where(
            Message.recipient_id == contact.device_id, Message.sender_id == SYSTEM_SENDER))]
    assert [b["type"] for b in bodies].count("custody_challenge") == 1           # replaced, not piled up
    (challenge,) = contact.custody_challenges()
    assert bodies[0]["challenge"] == challenge["challenge"]
    e = err(world["contact"].call, "POST", f"/v1/accounts/{aid}/recovery/custody-check")
    assert (e.status, e.code) == (404, "account_not_found")                       # owner only


def test_the_requester_withdraws_its_case(world, rsettings):
    from audit.model import AuditEvent
    from messaging.model import Message
    _rec, case = _verified_case(world, rsettings)
    cid = case["case_id"]
    assert world["new"].call("DELETE", f"/v1/recoveries/{cid}") == {"case_id": cid, "state": "cancelled"}
    assert world["new"].case(cid)["state"] == "cancelled"
    assert world["new"].call("DELETE", f"/v1/recoveries/{cid}")["state"] == "cancelled"     # idempotent
    with session_scope(rsettings.database_url) as s:
        actions = [e.action for e in s.scalars(select(AuditEvent).where(AuditEvent.subject == cid))]
        told = [m.ciphertext for m in s.scalars(select(Message).where(Message.recipient_id == world["contact"].device_id))]
    assert "recovery.withdrawn" in actions
    assert any(b'"recovery_withdrawn"' in body for body in told)
    assert world["contact"].requests() == []


def test_a_decoy_case_is_withdrawn_the_same_way(world, rapp):
    from tests.api.recovery_kit import device
    other = device(rapp)
    case = Recoverer(other).start("nobody@example.org")
    assert other.call("DELETE", f"/v1/recoveries/{case['case_id']}") == {"case_id": case["case_id"],
                                                                          "state": "cancelled"}


# -- issue #15: development outboxes filter; the OTP mail names its case ----------------------------
def test_outboxes_filter_and_the_code_mail_names_its_case(world, rsettings, rapp):
    from tests.api.recovery_kit import staff_call
    first = Recoverer(world["new"]).start(world["email"])
    second = Recoverer(world["new"]).start(world["email"])
    status, body = staff_call(rapp, "GET", f"/v1/admin/outbox/mail?email={world['email']}&kind=recovery_otp")
    assert status == 200 and [m["case_id"] for m in body["mails"]] == [second["case_id"], first["case_id"]]
    assert all(first["case_id"][-8:] in m["subject"] or second["case_id"][-8:] in m["subject"] for m in body["mails"])
    status, body = staff_call(rapp, "GET", f"/v1/admin/outbox/mail?case_id={first['case_id']}")
    assert [m["case_id"] for m in body["mails"]] == [first["case_id"]]
    assert staff_call(rapp, "GET", "/v1/admin/outbox/mail?email=nobody@example.org")[1]["mails"] == []
    world["old"].call("POST", f"/v1/accounts/{world['aid']}/recovery/custody-check")    # pushes to the holders
    device_id = world["contact"].device_id
    status, body = staff_call(rapp, "GET", f"/v1/admin/outbox/push?device_id={device_id}")
    assert status == 200 and body["notifications"] and {n["device_id"] for n in body["notifications"]} == {device_id}
    status, body = staff_call(rapp, "GET", "/v1/admin/outbox/push?kind=no_such_kind&since=2020-01-01T00:00:00Z")
    assert body["notifications"] == []


# -- issue #15: system messages are their own thing ---------------------------------------------------
def test_system_messages_are_marked_documented_and_surfaced_by_the_client(world, rsettings, tmp_path):
    from client.messaging import MessagingClient, SignalMessenger
    from messaging.system import KINDS, SYSTEM_VERSION
    old, contact, aid = world["old"], world["contact"], world["aid"]
    old.call("POST", f"/v1/accounts/{aid}/recovery/custody-check")
    page = contact.call("GET", "/v1/messages")
    (msg,) = [m for m in page["messages"] if m["system"]]
    assert msg["from"] == "custos" and msg["type"] == 200 and "ciphertext" not in msg
    assert msg["body"]["v"] == SYSTEM_VERSION and msg["body"]["type"] == "custody_challenge"
    assert set(msg["body"]) - {"v", "type"} <= set(KINDS["custody_challenge"])
    messenger = SignalMessenger(MessagingClient.like(contact), tmp_path / "contact.db")
    try:
        received = messenger.receive()
    finally:
        messenger.close()
    assert [(r.system["type"], r.error) for r in received if r.system] == [("custody_challenge", None)]
    assert not [r for r in received if r.error]                  # not acked as undecryptable
    assert contact.call("GET", "/v1/messages")["messages"] == []


def test_an_undocumented_system_message_is_refused():
    import pytest
    from messaging.system import UnknownSystemMessage, body_of
    with pytest.raises(UnknownSystemMessage):
        body_of({"type": "surprise"})
    with pytest.raises(UnknownSystemMessage):
        body_of({"type": "custody_challenge", "holder_id": "h", "challenge": "c", "secret": "x"})
