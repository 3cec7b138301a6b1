"""The inheritance claim state machine. Pure: functions read and set attributes of a
claim object (the ORM row or any object with the same fields) and take `now`.

    requested ──owner, e-mail, holders told──▶ waiting ──wait over──▶ released ──sweep broadcast──▶ completed
        │                                        │                      │
        └──────────────── cancelled ◀────────────┴──────────────────────┤ (owner, staff, plan/setup change)
                                                                         └──▶ expired (not swept within the TTL)

`released` is the state in which the beneficiary proves the recovery key and sweeps;
the claim becomes `completed` only once the sweep is broadcast, so an owner who is alive
can still cancel (or freeze) after the release and nothing leaves.
"""
from __future__ import annotations

import datetime as dt

from inheritance.errors import IllegalTransition

TRANSITIONS: dict[str, frozenset[str]] = {
    "requested": frozenset({"waiting", "cancelled"}),
    "waiting": frozenset({"released", "cancelled", "expired"}),
    "released": frozenset({"completed", "cancelled", "expired"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
    "expired": frozenset(),
}
STATES = tuple(TRANSITIONS)
OPEN_STATES = ("requested", "waiting", "released")


def transition(claim, to: str, now: dt.datetime, *, by: str = "system", reason: str | None = None) -> None:
    """Move `claim` to `to`, appending to its history. Raises IllegalTransition (the
    claim is unchanged)."""
    if to not in TRANSITIONS.get(claim.state, frozenset()):
        raise IllegalTransition(f"a {claim.state} claim cannot become {to}", details={"state": claim.state, "to": to})
    entry = {"from": claim.state, "to": to, "at": now.isoformat(), "by": by}
    if reason:
        entry["reason"] = reason
    claim.history = [*(claim.history or []), entry]
    claim.state = to
    claim.updated_at = now
    if to in ("cancelled", "expired"):
        claim.closed_reason = reason or to
        claim.closed_at = now


def due_step(claim, now: dt.datetime) -> str | None:
    """The timed step due for `claim` at `now`, or None: 'release' (waiting and the wait
    is over — it wins over a reminder due at the same time), 'remind' (waiting and a
    reminder is due) or 'expire' (released and not swept before `expires_at`)."""
    if claim.state == "waiting":
        if now >= claim.wait_ends_at:
            return "release"
        if claim.next_reminder_at is not None and now >= claim.next_reminder_at:
            return "remind"
    if claim.state == "released" and claim.expires_at is not None and now >= claim.expires_at:
        return "expire"
    return None


def next_due(claim) -> dt.datetime | None:
    """When the next timed step could become due (for scheduling a job), or None."""
    if claim.state == "waiting":
        times = [claim.wait_ends_at]
        if claim.next_reminder_at is not None:
            times.append(claim.next_reminder_at)
        return min(times)
    if claim.state == "released":
        return claim.expires_at
    return None
