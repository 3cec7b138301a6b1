"""The recovery case state machine. Pure: functions read and set attributes of a case
object (the ORM row or any object with the same fields) and take `now`.

    requested ──otp/staff──▶ otp_verified ──▶ collecting ──enough shares──▶ waiting
        │                                        │                           │
        ├─5 wrong OTPs──▶ failed                 │        delay over (or two staff approvals)
        │                                        ▼                           ▼
        └──────────── cancelled / expired ◀──── any open state          released ──proof──▶ completed

`requested`, `otp_verified`, `collecting`, `waiting` and `released` are open; every open
state can be cancelled (by an old device or staff) or expire (RECOVERY_CASE_TTL).
"""
from __future__ import annotations

import datetime as dt

from recovery.errors import IllegalTransition

TRANSITIONS: dict[str, frozenset[str]] = {
    "requested": frozenset({"otp_verified", "failed", "cancelled", "expired"}),
    "otp_verified": frozenset({"collecting", "cancelled", "expired"}),
    "collecting": frozenset({"waiting", "cancelled", "expired"}),
    "waiting": frozenset({"released", "cancelled", "expired"}),
    "released": frozenset({"completed", "cancelled", "expired"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
    "expired": frozenset(),
    "failed": frozenset(),
}
STATES = tuple(TRANSITIONS)
OPEN_STATES = ("requested", "otp_verified", "collecting", "waiting", "released")
CONTACT_STATES = ("collecting", "waiting", "released")   # holders are asked / may answer


def transition(case, to: str, now: dt.datetime, *, by: str = "system", reason: str | None = None) -> None:
    """Move `case` to `to`, appending to its history. Raises IllegalTransition."""
    if to not in TRANSITIONS.get(case.state, frozenset()):
        raise IllegalTransition(f"a {case.state} case cannot become {to}",
                                details={"state": case.state, "to": to})
    entry = {"from": case.state, "to": to, "at": now.isoformat(), "by": by}
    if reason:
        entry["reason"] = reason
    case.history = [*(case.history or []), entry]
    case.state = to
    case.updated_at = now
    if to in ("cancelled", "expired", "failed"):
        case.closed_reason = reason or to


def due_step(case, now: dt.datetime, enough_shares: bool) -> str | None:
    """The timed step due for `case` at `now`, or None: 'expire' (past expires_at while
    open), 'to_waiting' (collecting and `enough_shares`), 'release' (waiting and the
    delay is over), 'remind' (a reminder is due). An expired OTP is not a step: the
    requester asks for a new code, or the case expires."""
    if case.state not in OPEN_STATES:
        return None
    if now >= case.expires_at:
        return "expire"
    if case.state == "collecting" and enough_shares:
        return "to_waiting"
    if case.state == "waiting" and case.delay_ends_at is not None and now >= case.delay_ends_at:
        return "release"
    if case.state in ("collecting", "waiting") and case.next_reminder_at is not None and now >= case.next_reminder_at:
        return "remind"
    return None


def next_due(case) -> dt.datetime | None:
    """When the next timed step could become due (for scheduling a job)."""
    if case.state not in OPEN_STATES:
        return None
    times = [case.expires_at]
    if case.state == "waiting" and case.delay_ends_at is not None:
        times.append(case.delay_ends_at)
    if case.state in ("collecting", "waiting") and case.next_reminder_at is not None:
        times.append(case.next_reminder_at)
    return min(times)
