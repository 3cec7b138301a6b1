"""Durable scheduled jobs and the reconciler's queries.

A job row (kind, subject, due_at) is the truth; Celery messages only wake workers.
`claim()` moves a job to `running` atomically so two workers never run it together;
a job left `running` longer than STALE_AFTER (crashed worker) is due again.
Handlers register by kind with `@handler("kind")` and must be idempotent.
"""
from __future__ import annotations

import datetime as dt
import secrets
from typing import Callable

from sqlalchemy import Integer, String, Text, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.base import Base, UTCDateTime

STALE_AFTER = dt.timedelta(minutes=10)   # a running job older than this is retried
REENQUEUE_AFTER = dt.timedelta(seconds=60)  # a pending job enqueued this long ago is re-sent
MAX_ATTEMPTS = 10
RETRY_BASE = dt.timedelta(seconds=30)      # a failed job waits RETRY_BASE·2^(attempts-1) …
RETRY_MAX = dt.timedelta(hours=1)          # … at most this long, before it is due again
HANDLERS: dict[str, Callable[[Session, str, dt.datetime], None]] = {}


class ScheduledJob(Base):
    __tablename__ = "scheduled_jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    subject: Mapped[str] = mapped_column(String(128), nullable=False)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)


class WorkerHeartbeat(Base):
    """Last time each worker / beat process was seen (for readiness and admin status)."""
    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


def handler(kind: str):
    def register(fn):
        HANDLERS[kind] = fn
        return fn
    return register


def schedule(session: Session, kind: str, subject: str, due_at: dt.datetime) -> ScheduledJob:
    """Add a pending job. Not idempotent: callers that may retry should check first."""
    job = ScheduledJob(id="job_" + secrets.token_hex(12), kind=kind, subject=subject, due_at=due_at,
                       state="pending", attempts=0)
    session.add(job)
    session.flush()
    return job


def due(session: Session, now: dt.datetime, limit: int = 100) -> list[str]:
    """Ids of jobs to (re-)enqueue: pending and due, not enqueued in the last
    REENQUEUE_AFTER; or running but stale. Marks them enqueued."""
    rows = session.scalars(
        select(ScheduledJob.id).where(
            ScheduledJob.due_at <= now, ScheduledJob.attempts < MAX_ATTEMPTS,
            or_((ScheduledJob.state == "pending") &
                (or_(ScheduledJob.enqueued_at.is_(None), ScheduledJob.enqueued_at <= now - REENQUEUE_AFTER)),
                (ScheduledJob.state == "running") & (ScheduledJob.started_at <= now - STALE_AFTER)))
        .order_by(ScheduledJob.due_at).limit(limit)).all()
    if rows:
        session.execute(update(ScheduledJob).where(ScheduledJob.id.in_(rows))
                        .values(enqueued_at=now, state="pending"))
    return list(rows)


def claim(session: Session, job_id: str, now: dt.datetime) -> ScheduledJob | None:
    """Atomically move a pending, due job to running; None if someone else has it or it
    is done. Safe against concurrent workers (conditional UPDATE)."""
    result = session.execute(
        update(ScheduledJob).where(ScheduledJob.id == job_id, ScheduledJob.state == "pending",
                                   ScheduledJob.due_at <= now)
        .values(state="running", started_at=now, attempts=ScheduledJob.attempts + 1))
    if result.rowcount != 1:
        return None
    return session.get(ScheduledJob, job_id)


def run(session: Session, job: ScheduledJob, now: dt.datetime) -> None:
    """Run a claimed job's handler and mark it done (or failed with the error class)."""
    fn = HANDLERS.get(job.kind)
    if fn is None:
        job.state, job.last_error = "failed", f"no handler for kind {job.kind!r}"
    else:
        fn(session, job.subject, now)
        job.state = "done"
    job.finished_at = now


def fail(session: Session, job_id: str, error: str, now: dt.datetime) -> str:
    """Record a failed run (in a fresh transaction, after the run's own rolled back):
    `last_error` = the error class, back to `pending` due after a growing back-off, or
    `failed` for good after MAX_ATTEMPTS. Returns the new state. Idempotent per attempt."""
    job = session.get(ScheduledJob, job_id)
    if job is None:
        return "gone"
    job.last_error = error[:200]
    job.finished_at = now
    if job.attempts >= MAX_ATTEMPTS:
        job.state = "failed"
    else:
        job.state = "pending"
        job.due_at = now + min(RETRY_BASE * 2 ** max(0, job.attempts - 1), RETRY_MAX)
    return job.state


def beat(session: Session, name: str, now: dt.datetime) -> None:
    """Record that process `name` is alive. Idempotent upsert."""
    row = session.get(WorkerHeartbeat, name)
    if row is None:
        session.add(WorkerHeartbeat(name=name, seen_at=now))
    else:
        row.seen_at = now
