"""Inheritance through the API without a chain: plan validation (nothing stored on a
refusal), loosening delayed and cancellable, tightening at once; claims: who may claim,
who may cancel, the 30-day block, reminders and the release by the timed step, staff."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from client.phone import PhoneWallet
from client.inheritance import Claimant
from client.sdk import ApiError
from store.base import utcnow
from store.session import session_scope
from tests.api.inheritance_kit import (advance, apply_changes, befriend, device, setup_with_beneficiary,
                                       system_bodies)
from tests.api.recovery_kit import STAFF_ENV, account, staff_call


@pytest.fixture
def isettings(settings_factory, master_key):
    return settings_factory(STAFF_API_KEYS=STAFF_ENV, MASTER_KEY=master_key)


@pytest.fixture
def iapp(app_factory, isettings):
    return app_factory(isettings)


@pytest.fixture
def world(iapp):
    owner, ben, other, stranger = device(iapp), device(iapp), device(iapp), device(iapp)
    phone = PhoneWallet()
    acct = account(owner, phone)
    befriend(owner, ben)
    befriend(owner, other)
    split = setup_with_beneficiary(owner, ben.device_id, other.device_id, acct["account_id"], phone,
                                   "heir-owner@example.org")
    return dict(owner=owner, ben=ben, other=other, stranger=stranger, aid=acct["account_id"], split=split,
                phone=phone, app=iapp)


def err(fn, *a, **kw) -> ApiError:
    with pytest.raises(ApiError) as info:
        fn(*a, **kw)
    return info.value


def _rows(settings) -> tuple[int, int, int]:
    from inheritance.model import InheritanceClaim, InheritancePlan, InheritancePlanChange
    with session_scope(settings.database_url) as s:
        return tuple(s.scalar(select(func.count()).select_from(t))
                     for t in (InheritancePlan, InheritancePlanChange, InheritanceClaim))


def _named(world, isettings, waiting_days=30):
    """A plan naming the beneficiary, its loosening delay passed."""
    owner, aid = world["owner"], world["aid"]
    out = owner.set_plan(aid, [{"device_id": world["ben"].device_id, "label": "Ben"}], waiting_days)
    assert out["beneficiaries"] == [] and [c["action"] for c in out["pending_changes"]] == \
        ["inheritance.add_beneficiary"]
    assert apply_changes(isettings, aid, utcnow() + dt.timedelta(days=4)) == 1
    return owner.plan(aid)


# -- plan -----------------------------------------------------------------------------------
def test_plan_bad_inputs_are_400_and_store_nothing(world, isettings, iapp):
    owner, aid = world["owner"], world["aid"]
    stranger, other = world["stranger"], world["other"]
    ben = world["ben"].device_id
    cases = {
        "beneficiary_not_contact": [{"device_id": stranger.device_id}],
        "beneficiary_not_holder": [{"device_id": other.device_id}],        # a contact and holder, not a beneficiary
        "beneficiary_is_owner": [{"device_id": owner.device_id}],
        "beneficiary_unknown": [{"device_id": "dev_nope"}],
        "duplicate_beneficiary": [{"device_id": ben}, {"device_id": ben}],
        "invalid_beneficiary": [{"device_id": 7}],
    }
    befriend(owner, stranger)
    cases["beneficiary_not_contact"] = [{"device_id": device(iapp).device_id}]
    for code, bens in cases.items():
        e = err(owner.set_plan, aid, bens, 180)
        assert (e.status, e.code) == (400, code), code
    for days in (29, 731, "180", 180.5, True, None):
        e = err(owner.call, "PUT", f"/v1/accounts/{aid}/inheritance", {"beneficiaries": [{"device_id": ben}],
                                                                       "waiting_days": days})
        assert (e.status, e.code) == (400, "invalid_waiting_days"), days
    assert _rows(isettings) == (0, 0, 0)
    e = err(world["ben"].set_plan, aid, [{"device_id": ben}])
    assert (e.status, e.code) == (404, "account_not_found")


def test_share_plus_operator_below_threshold_is_refused(iapp, isettings):
    owner, ben, other = device(iapp), device(iapp), device(iapp)
    phone = PhoneWallet()
    acct = account(owner, phone)
    befriend(owner, ben)
    setup_with_beneficiary(owner, ben.device_id, other.device_id, acct["account_id"], phone, "t3@example.org",
                           groups=((3, 4),))
    e = err(owner.set_plan, acct["account_id"], [{"device_id": ben.device_id}], 60)
    assert (e.status, e.code, e.details["device_id"]) == (400, "beneficiary_below_threshold", ben.device_id)
    assert _rows(isettings) == (0, 0, 0)


def test_no_recovery_setup_is_refused(iapp, isettings):
    owner, ben = device(iapp), device(iapp)
    acct = account(owner, PhoneWallet())
    befriend(owner, ben)
    e = err(owner.set_plan, acct["account_id"], [{"device_id": ben.device_id}])
    assert (e.status, e.code) == (400, "recovery_not_configured")
    assert _rows(isettings) == (0, 0, 0)


def test_adding_is_delayed_and_cancellable_removing_is_immediate(world, isettings):
    owner, aid, ben = world["owner"], world["aid"], world["ben"]
    out = owner.set_plan(aid, [{"device_id": ben.device_id, "label": "Ben"}])
    assert out["waiting_days"] == 180 and out["beneficiaries"] == []
    [change] = out["pending_changes"]
    # not before its time, and a claim is refused meanwhile
    assert apply_changes(isettings, aid, utcnow() + dt.timedelta(hours=1)) == 0
    e = err(Claimant(ben).start, aid)
    assert (e.status, e.code) == (403, "not_a_beneficiary")
    assert owner.cancel_plan_change(aid, change["change_id"])["state"] == "cancelled"
    assert apply_changes(isettings, aid, utcnow() + dt.timedelta(days=30)) == 0
    assert owner.plan(aid)["beneficiaries"] == []
    assert system_bodies(ben, "inheritance_named") == []
    # named for real: told it was named and nothing else
    plan = _named(world, isettings, waiting_days=180)
    assert [b["device_id"] for b in plan["beneficiaries"]] == [ben.device_id]
    [note] = system_bodies(ben, "inheritance_named")
    assert set(note) == {"v", "type", "account_id"} and note["account_id"] == aid
    # shortening waits; lengthening is immediate
    out = owner.set_plan(aid, [{"device_id": ben.device_id, "label": "Ben"}], 90)
    assert out["waiting_days"] == 180 and [c["action"] for c in out["pending_changes"]] == \
        ["inheritance.shorten_wait"]
    out = owner.set_plan(aid, [{"device_id": ben.device_id, "label": "Ben"}], 365)
    assert out["waiting_days"] == 365 and out["pending_changes"] == []
    # removing is immediate
    assert owner.set_plan(aid, [], 365)["beneficiaries"] == []


def test_one_function_decides_whether_a_change_applies(world, isettings):
    from inheritance import plans
    from inheritance.model import InheritancePlanChange
    assert plans.ADD_BENEFICIARY == "inheritance.add_beneficiary" and plans.SHORTEN_WAIT == "inheritance.shorten_wait"
    now = utcnow()
    c = InheritancePlanChange(id="ichg_unasked", state="pending", effective_at=now)
    with session_scope(isettings.database_url) as s:
        assert plans.may_apply(s, c, now) and not plans.may_apply(s, c, now - dt.timedelta(seconds=1))
        c.state = "cancelled"
        assert not plans.may_apply(s, c, now + dt.timedelta(days=1))


def _oob_request(settings, change_id: str):
    from verification.model import VerificationRequest
    with session_scope(settings.database_url) as s:
        return [(r.id, r.action, r.state) for r in s.query(VerificationRequest)
                .filter_by(subject_kind="inheritance_change", subject_id=change_id)]


def test_a_plan_loosening_also_waits_for_the_second_channel(world, isettings):
    """Issue #17 on #18: with a verification channel, adding a beneficiary applies only
    after its delay AND a confirmation on that channel; a confirmation that never comes
    (VERIFY_TTL) cancels the change, and so does nothing else reach the plan."""
    from tests.api import verification_kit as vk
    from tests.api.test_policy import run_due_jobs
    owner, aid, ben = world["owner"], world["aid"], world["ben"]
    totp = vk.with_totp(owner, {"account_id": aid})
    [change] = owner.set_plan(aid, [{"device_id": ben.device_id, "label": "Ben"}], 60)["pending_changes"]
    [(req_id, action, state)] = _oob_request(isettings, change["change_id"])
    assert (action, state) == ("inheritance.add_beneficiary", "pending")
    later = utcnow() + dt.timedelta(days=4)
    assert apply_changes(isettings, aid, later) == 0          # the delay is over, the confirmation is not
    assert owner.plan(aid)["beneficiaries"] == []
    out = owner.call("POST", f"/v1/verifications/{req_id}", {"code": vk.totp_code(isettings, aid, totp)})
    assert out["request"]["state"] == "confirmed"
    assert apply_changes(isettings, aid, later) == 1
    assert [b["device_id"] for b in owner.plan(aid)["beneficiaries"]] == [ben.device_id]
    # shortening the wait: left unconfirmed, the request expires and takes the change with it
    [short] = owner.set_plan(aid, [{"device_id": ben.device_id, "label": "Ben"}], 30)["pending_changes"]
    assert short["action"] == "inheritance.shorten_wait" and _oob_request(isettings, short["change_id"])
    run_due_jobs(isettings, utcnow() + dt.timedelta(minutes=20))
    assert [state for _i, _a, state in _oob_request(isettings, short["change_id"])] == ["expired"]
    assert owner.plan(aid)["pending_changes"] == []
    assert apply_changes(isettings, aid, utcnow() + dt.timedelta(days=4)) == 0
    assert owner.plan(aid)["waiting_days"] == 60
    # an owner who cancels the change also closes its links
    [again] = owner.set_plan(aid, [{"device_id": ben.device_id, "label": "Ben"}], 30)["pending_changes"]
    owner.cancel_plan_change(aid, again["change_id"])
    assert [state for _i, _a, state in _oob_request(isettings, again["change_id"])] == ["withdrawn"]


# -- claims ---------------------------------------------------------------------------------
def test_claim_by_a_non_beneficiary_and_cancel_by_someone_else(world, isettings):
    aid = world["aid"]
    _named(world, isettings)
    for who in ("stranger", "other", "owner"):
        e = err(Claimant(world[who]).start, aid)
        assert (e.status, e.code) == (403, "not_a_beneficiary"), who
    e = err(Claimant(world["stranger"]).start, "acct_unknown")
    assert (e.status, e.code) == (403, "not_a_beneficiary")
    e = err(world["ben"].call, "POST", "/v1/inheritance/claims", {"account_id": aid, "sealing_key": "AAAA"})
    assert (e.status, e.code) == (400, "invalid_sealing_key")
    claim = Claimant(world["ben"]).start(aid)
    assert claim["state"] == "waiting"
    for who in ("stranger", "other", "ben"):
        e = err(world[who].decline_claim, claim["claim_id"])
        assert (e.status, e.code) == (404, "claim_not_found"), who
    e = err(world["stranger"].claim, claim["claim_id"])
    assert (e.status, e.code) == (404, "claim_not_found")
    e = err(Claimant(world["ben"]).start, aid)
    assert (e.status, e.code) == (409, "claim_open")


def test_claim_notifies_reminds_releases_and_a_decline_blocks(world, isettings, iapp):
    owner, ben, other, aid = world["owner"], world["ben"], world["other"], world["aid"]
    _named(world, isettings, waiting_days=30)
    for c in (owner, other):
        system_bodies(c, "x")          # empty the queues
    claimant = Claimant(ben)
    claim = claimant.start(aid)
    ends = dt.datetime.fromisoformat(claim["wait_ends_at"])
    [told_owner] = system_bodies(owner, "inheritance_claim_started")
    [told_other] = system_bodies(other, "inheritance_claim_started")
    assert (told_owner["role"], told_other["role"]) == ("owner", "holder")
    assert owner.plan(aid)["claims"][0]["claim_id"] == claim["claim_id"]
    # a week later: a reminder to everyone; before the end nothing is released
    assert advance(isettings, claim["claim_id"], utcnow() + dt.timedelta(days=7, minutes=1)) == "waiting"
    assert len(system_bodies(owner, "inheritance_claim_reminder")) == 1
    assert len(system_bodies(other, "inheritance_claim_reminder")) == 1
    assert ben.claim(claim["claim_id"])["operator_share_sealed"] is None
    # the owner declines: the beneficiary is told, and blocked for 30 days
    assert owner.decline_claim(claim["claim_id"])["state"] == "cancelled"
    assert owner.decline_claim(claim["claim_id"])["state"] == "cancelled"      # idempotent
    [declined] = system_bodies(ben, "inheritance_declined")
    assert declined["claim_id"] == claim["claim_id"]
    assert advance(isettings, claim["claim_id"], ends + dt.timedelta(days=1)) == "cancelled"
    assert ben.claim(claim["claim_id"])["operator_share_sealed"] is None
    e = err(claimant.start, aid)
    assert (e.status, e.code) == (409, "claim_blocked") and e.details["blocked_until"]


def test_staff_lists_and_cancels_but_cannot_shorten(world, isettings, iapp):
    aid = world["aid"]
    _named(world, isettings)
    claim = Claimant(world["ben"]).start(aid)
    status, body = staff_call(iapp, "GET", "/v1/admin/inheritance/claims?state=waiting")
    assert status == 200 and [c["claim_id"] for c in body["claims"]] == [claim["claim_id"]]
    status, body = staff_call(iapp, "GET", f"/v1/admin/inheritance/claims/{claim['claim_id']}")
    assert status == 200 and any(e["action"] == "inheritance.requested" for e in body["audit"])
    status, body = staff_call(iapp, "POST", f"/v1/admin/inheritance/claims/{claim['claim_id']}/cancel")
    assert status == 200 and body["state"] == "cancelled" and body["closed_reason"] == "cancelled_by_staff"
    assert not any("inheritance" in rule.rule and ("shorten" in rule.rule or "release" in rule.rule)
                   for rule in iapp.url_map.iter_rules() if rule.rule.startswith("/v1/admin"))
    status, body = staff_call(iapp, "GET", "/v1/admin/inheritance/claims/icl_nope")
    assert (status, body["error"]["code"]) == (404, "claim_not_found")


def test_a_claim_is_decided_with_the_state_of_now(world, isettings):
    """A beneficiary who is no longer the owner's contact cannot claim, and an open claim
    of one is cancelled at its next step instead of being released."""
    from client.messaging import MessagingClient
    owner, ben, aid = world["owner"], world["ben"], world["aid"]
    _named(world, isettings)
    claim = Claimant(ben).start(aid)
    [contact] = [c for c in MessagingClient.like(owner).contacts() if c["device_id"] == ben.device_id]
    MessagingClient.like(owner).delete_contact(contact["contact_id"])
    ends = dt.datetime.fromisoformat(claim["wait_ends_at"])
    assert advance(isettings, claim["claim_id"], ends + dt.timedelta(seconds=1)) == "cancelled"
    got = ben.claim(claim["claim_id"])
    assert got["closed_reason"] == "beneficiary_not_eligible" and got["operator_share_sealed"] is None
    e = err(Claimant(ben).start, aid)
    assert (e.status, e.code) == (403, "not_a_beneficiary")
