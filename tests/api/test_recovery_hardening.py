"""Recovery defects from the security review (issue #14): a setup replaced under an open
case (M2), OTP guessing budgets across cases and workers (M3), expired codes (L8) and
equal work for known and unknown emails (L1)."""
from __future__ import annotations

from sqlalchemy import delete, select

from client.recovery import Recoverer, setup_body, split_recovery
from store.session import session_scope
from tests.api.recovery_kit import advance, outbox_codes, staff_call
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
    assert old.setup(aid, _replacement(world))["setup_id"] != before


def test_replacing_the_setup_cancels_unverified_cases(world, rsettings):
    old, aid, new = world["old"], world["aid"], world["new"]
    case = Recoverer(new).start(world["email"])
    after = old.setup(aid, _replacement(world))
    assert after["setup_id"]
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
