"""Pure inheritance code: the claim state machine (every legal and illegal transition,
the timed steps), the reminder schedule, and the `inheritance_sweep` rule."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from cosigner import policy as engine
from inheritance import machine, rule
from inheritance.errors import IllegalTransition
from inheritance.schedule import next_reminder, reminder_times

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)
WEEK = dt.timedelta(days=7)


def _claim(state="waiting", **kw):
    base = dict(state=state, history=[], updated_at=T0, closed_reason=None, closed_at=None,
                wait_ends_at=T0 + 30 * DAY, next_reminder_at=T0 + WEEK, expires_at=None)
    return SimpleNamespace(**{**base, **kw})


LEGAL = {("requested", "waiting"), ("requested", "cancelled"), ("waiting", "released"), ("waiting", "cancelled"),
         ("waiting", "expired"), ("released", "completed"), ("released", "cancelled"), ("released", "expired")}


@pytest.mark.parametrize("frm", machine.STATES)
@pytest.mark.parametrize("to", machine.STATES)
def test_every_transition_is_legal_or_refused(frm, to):
    claim = _claim(frm)
    if (frm, to) in LEGAL:
        machine.transition(claim, to, T0 + DAY, by="dev_x", reason="r" if to == "cancelled" else None)
        assert claim.state == to and claim.history[-1] == {"from": frm, "to": to, "at": (T0 + DAY).isoformat(),
                                                           "by": "dev_x", **({"reason": "r"} if to == "cancelled"
                                                                             else {})}
        if to in ("cancelled", "expired"):
            assert claim.closed_at == T0 + DAY and claim.closed_reason
    else:
        with pytest.raises(IllegalTransition):
            machine.transition(claim, to, T0 + DAY)
        assert claim.state == frm and claim.history == []


def test_terminal_states_have_no_way_out():
    for s in ("completed", "cancelled", "expired"):
        assert machine.TRANSITIONS[s] == frozenset()
    assert set(machine.OPEN_STATES) == {"requested", "waiting", "released"}


def test_due_steps():
    c = _claim()
    assert machine.due_step(c, T0 + DAY) is None
    assert machine.due_step(c, T0 + WEEK) == "remind"
    assert machine.due_step(c, T0 + 30 * DAY) == "release"          # the release wins over a due reminder
    assert machine.next_due(c) == T0 + WEEK
    c.next_reminder_at = None
    assert machine.next_due(c) == T0 + 30 * DAY
    r = _claim("released", expires_at=T0 + 60 * DAY)
    assert machine.due_step(r, T0 + 59 * DAY) is None and machine.due_step(r, T0 + 60 * DAY) == "expire"
    assert machine.next_due(r) == T0 + 60 * DAY
    for s in ("requested", "completed", "cancelled", "expired"):
        assert machine.due_step(_claim(s), T0 + 1000 * DAY) is None and machine.next_due(_claim(s)) is None


def test_reminders_weekly_and_seven_and_one_day_before_the_end():
    end = T0 + 30 * DAY
    times = reminder_times(T0, end, WEEK)
    assert times == [T0 + WEEK, T0 + 2 * WEEK, T0 + 3 * WEEK, end - 7 * DAY, T0 + 4 * WEEK, end - DAY]
    assert all(T0 < t < end for t in times) and times == sorted(set(times))


def test_reminders_do_not_repeat_when_a_final_one_falls_on_the_interval():
    end = T0 + 28 * DAY                         # end - 7 days is the third weekly reminder
    assert reminder_times(T0, end, WEEK) == [T0 + WEEK, T0 + 2 * WEEK, T0 + 3 * WEEK, end - DAY]


def test_short_wait_and_bad_interval():
    assert reminder_times(T0, T0 + 2 * DAY, WEEK) == [T0 + DAY]   # only "1 day before" fits
    assert reminder_times(T0, T0 + DAY, WEEK) == []
    with pytest.raises(ValueError):
        reminder_times(T0, T0 + 30 * DAY, dt.timedelta(0))


def test_next_reminder():
    end = T0 + 180 * DAY
    assert next_reminder(T0, end, WEEK, T0) == T0 + WEEK
    assert next_reminder(T0, end, WEEK, T0 + WEEK) == T0 + 2 * WEEK
    assert next_reminder(T0, end, WEEK, end - 2 * DAY) == end - DAY
    assert next_reminder(T0, end, WEEK, end - DAY) is None
    # a worker down for three weeks: the next one after now, not the missed ones
    assert next_reminder(T0, end, WEEK, T0 + 3 * WEEK + DAY) == T0 + 4 * WEEK


def _intent():
    return engine.Intent((("bcrt1qdest", 99_000),), 1000, 2.0, frozenset({"t:0"}))


def test_inheritance_rule_freeze_blocks_limits_do_not():
    strict = engine.Policy(max_per_tx_sat=1, delay_all=True, delay_seconds=3600, version=4)
    ok = rule.evaluate(_intent(), strict, claim_ok=True)
    assert ok.action == "approve" and ok.reasons[0]["rule"] == "inheritance_sweep" and ok.policy_version == 4
    for policy, by in ((engine.Policy(frozen=True), "owner"), (engine.Policy(staff_frozen=True), "staff")):
        d = rule.evaluate(_intent(), policy, claim_ok=True)
        assert d.action == "deny" and {"rule": "frozen", "by": by} in d.reasons
    d = rule.evaluate(_intent(), engine.Policy(), claim_ok=False)
    assert d.action == "deny" and d.reasons[0]["refused"] == "claim_not_released"
