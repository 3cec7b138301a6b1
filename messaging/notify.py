"""`notify(session, device_id, kind, now)`: the one function every package calls to push
something to a device.

It writes a durable `messaging_notifications` row in the caller's transaction (so the push
exists if and only if the change that caused it commits). A Celery task delivers it
through the configured PushSender; a beat task re-sends rows still pending, so delivery
is at-least-once and the row id is the provider's idempotency key. Payloads are
content-free: the device learns only `kind` (e.g. "sync") and fetches the rest itself.

Bursts collapse to one push per device and kind per COLLAPSE_WINDOW: a pending
notification of the same kind absorbs new ones (one wake-up is enough for any number of
queued messages), and a notification asked for within COLLAPSE_WINDOW of the last one
that already went out becomes a single trailing push, due when the window ends — so the
device always gets a wake-up after the last change, never more than one per window.
"""
from __future__ import annotations

import datetime as dt
import re
import uuid

from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.orm import Session

from messaging.model import Notification

KIND = re.compile(r"^[a-z][a-z0-9_.]{0,31}$")
SYNC = "sync"            # new messages in the queue
REPLENISH = "replenish"  # one-time prekeys ran out
CLAIM_STALE_AFTER = dt.timedelta(minutes=2)   # a 'sending' row older than this is retried
REENQUEUE_AFTER = dt.timedelta(seconds=30)    # how long the flusher waits before re-sending
MAX_ATTEMPTS = 12
KEEP_DONE = dt.timedelta(days=7)              # delivered/failed rows are purged after this
COLLAPSE_WINDOW = dt.timedelta(seconds=5)     # at most one push per device and kind per window
# the device's newest notification of a kind (ix_messaging_notifications_device_kind_created), built once
_NEWEST = (select(Notification)
           .where(Notification.device_id == bindparam("device"), Notification.kind == bindparam("kind"))
           .order_by(Notification.created_at.desc()).limit(1))
NEW_IN_SESSION = "custos.new_notifications"   # session.info key: {id: seconds until due} created in
#                                               this transaction, for an after-commit hook to enqueue


def notify(session: Session, device_id: str, kind: str, now: dt.datetime) -> Notification:
    """Record a push for `device_id` in the caller's transaction; return the row: the
    device's newest notification of this kind if it is still pending, else a new row due
    now — or, when that newest one went out less than COLLAPSE_WINDOW ago, due at the end
    of its window. One indexed query when absorbed. Raises ValueError for a malformed
    kind. Does not send anything itself."""
    if not KIND.match(kind or ""):
        raise ValueError("notification kind must match [a-z][a-z0-9_.]{0,31}")
    last = session.scalar(_NEWEST, {"device": device_id, "kind": kind})
    if last is not None and last.state == "pending":
        return last
    due_at = now
    if last is not None and last.next_attempt_at > now - COLLAPSE_WINDOW:
        due_at = last.next_attempt_at + COLLAPSE_WINDOW
    row = Notification(id=str(uuid.uuid4()), device_id=device_id, kind=kind, state="pending", attempts=0,
                       created_at=now, next_attempt_at=due_at)
    session.add(row)
    session.flush()
    session.info.setdefault(NEW_IN_SESSION, {})[row.id] = (due_at - now).total_seconds()
    return row


def due(session: Session, now: dt.datetime, limit: int = 200) -> list[str]:
    """Ids of notifications to (re-)enqueue: pending and due, or stuck in 'sending' (a
    crashed worker). Pushes their next_attempt_at forward so the next sweep skips them
    unless they are still undelivered then."""
    rows = list(session.scalars(select(Notification.id).where(
        Notification.attempts < MAX_ATTEMPTS,
        or_((Notification.state == "pending") & (Notification.next_attempt_at <= now),
            (Notification.state == "sending") & (Notification.claimed_at <= now - CLAIM_STALE_AFTER)))
        .order_by(Notification.next_attempt_at).limit(limit)))
    if rows:
        session.execute(update(Notification).where(Notification.id.in_(rows))
                        .values(state="pending", next_attempt_at=now + REENQUEUE_AFTER))
    return rows


def claim(session: Session, notification_id: str, now: dt.datetime) -> Notification | None:
    """Atomically move a pending (or stale sending) notification to 'sending'; None if it
    is delivered, failed, or another worker holds it (conditional UPDATE)."""
    result = session.execute(
        update(Notification).where(
            Notification.id == notification_id, Notification.attempts < MAX_ATTEMPTS,
            or_(Notification.state == "pending",
                (Notification.state == "sending") & (Notification.claimed_at <= now - CLAIM_STALE_AFTER)))
        .values(state="sending", claimed_at=now, attempts=Notification.attempts + 1))
    if result.rowcount != 1:
        return None
    return session.get(Notification, notification_id, populate_existing=True)


def mark_delivered(session: Session, notification_id: str, channel: str, now: dt.datetime) -> None:
    session.execute(update(Notification).where(Notification.id == notification_id)
                    .values(state="delivered", delivered_at=now, channel=channel, last_error=None))


def mark_retry(session: Session, notification_id: str, error: str, at: dt.datetime) -> None:
    """Back to pending, due again at `at` (the flusher or the task's own retry sends it)."""
    session.execute(update(Notification).where(Notification.id == notification_id, Notification.state == "sending")
                    .values(state="pending", next_attempt_at=at, last_error=error[:64]))


def mark_failed(session: Session, notification_id: str, error: str) -> None:
    session.execute(update(Notification).where(Notification.id == notification_id)
                    .values(state="failed", last_error=error[:64]))


def backoff(attempts: int, base: float, cap: float = 300.0) -> float:
    """Seconds to wait after `attempts` failed tries: base·2^(attempts-1), at most `cap`."""
    return min(cap, base * (2 ** max(0, attempts - 1)))


def purge_done(session: Session, now: dt.datetime) -> int:
    """Delete delivered and failed notifications older than KEEP_DONE. Idempotent."""
    return session.execute(delete(Notification).where(Notification.state.in_(("delivered", "failed")),
                                                      Notification.created_at <= now - KEEP_DONE)).rowcount or 0
