"""Thin Celery tasks: take ids, call one service in one transaction, safe to run twice."""
from __future__ import annotations

import logging
import os
import socket

from celery import shared_task
from celery.signals import task_failure

import workers.handlers  # noqa: F401  (registers job handlers)
from store.base import utcnow
from store.session import session_scope

log = logging.getLogger("custos.workers")


def _settings(task):
    return task.app.custos_settings


@task_failure.connect
def _count_task_failure(sender=None, **_kwargs):
    """Prometheus: custos_celery_task_failures_total{task} (admin.metrics)."""
    from admin.metrics import task_failed
    task_failed(getattr(sender, "name", None) or "unknown")


@shared_task(bind=True, name="workers.tasks.purge_expired_nonces")
def purge_expired_nonces(self) -> int:
    """Delete used request nonces whose window has passed (embedded mode keeps them in the
    database). Idempotent. Returns the number deleted."""
    from devices.nonces import purge_expired
    with session_scope(_settings(self).database_url) as session:
        n = purge_expired(session, utcnow())
    log.info("purged %d expired nonces", n)
    return n


@shared_task(bind=True, name="workers.tasks.heartbeat")
def heartbeat(self, name: str | None = None) -> str:
    """Record that a worker (and, via the beat schedule, beat) is alive. Idempotent."""
    from workers.jobs import beat
    name = name or f"worker@{socket.gethostname()}:{os.getpid()}"
    with session_scope(_settings(self).database_url) as session:
        beat(session, name, utcnow())
    return name


@shared_task(bind=True, name="workers.tasks.reconcile")
def reconcile(self) -> int:
    """Find due scheduled jobs in the database and enqueue `run_job` for each.
    Returns how many were enqueued. Idempotent: enqueueing twice is harmless because
    run_job claims atomically."""
    from workers.jobs import beat, due
    with session_scope(_settings(self).database_url) as session:
        ids = due(session, utcnow())
        beat(session, "beat", utcnow())
    for job_id in ids:
        run_job.delay(job_id)
    return len(ids)


@shared_task(bind=True, name="workers.tasks.run_job", autoretry_for=(ConnectionError, TimeoutError),
             retry_backoff=True, max_retries=5)
def run_job(self, job_id: str) -> str:
    """Claim and run one scheduled job. A job already claimed or done is skipped. A job
    that fails is rolled back, then its error class is recorded and it goes back to
    `pending` with a growing back-off (`failed` after MAX_ATTEMPTS)."""
    from workers.jobs import claim, fail, run
    with session_scope(_settings(self).database_url) as session:
        job = claim(session, job_id, utcnow())
        if job is None:
            return "skipped"
        kind = job.kind      # read now: the instance is detached once a failed run rolls back
    try:
        with session_scope(_settings(self).database_url) as session:
            run(session, session.get(type(job), job_id), utcnow())
            return session.get(type(job), job_id).state
    except (ConnectionError, TimeoutError):
        raise
    except Exception as exc:  # the job failed for good this attempt; reconciler retries
        log.error("job %s (%s) failed: %s", job_id, kind, type(exc).__name__)
        from admin.metrics import task_failed
        task_failed(f"run_job:{kind}")
        with session_scope(_settings(self).database_url) as session:
            return fail(session, job_id, type(exc).__name__, utcnow())


@shared_task(bind=True, name="workers.tasks.verify_audit_chain")
def verify_audit_chain(self) -> dict:
    """Walk the audit log's hash chain; log an error naming the first broken link."""
    from audit.services import verify
    with session_scope(_settings(self).database_url) as session:
        report = verify(session)
    if not report.ok:
        log.error("audit chain broken at seq %s: %s", report.first_broken_seq, report.reason)
    return {"ok": report.ok, "checked": report.checked, "first_broken_seq": report.first_broken_seq}


@shared_task(bind=True, name="workers.tasks.follow_chain", autoretry_for=(ConnectionError,), max_retries=3)
def follow_chain(self, woken: bool = False) -> int:
    """One block-follower pass (beat every CHAIN_WATCH_INTERVAL, and woken by ZMQ):
    blocks to the tip (reorgs undone), then the mempool. One leader at a time; a
    scheduled pass that finds another leader waits briefly, then returns. A `woken` one
    waits a quarter second at most (Follower.run_woken): while a long pass runs (a big
    block, a catch-up) the wake-ups that keep coming must not hold every worker process
    on the lock; the long pass is followed by another that picks up what they announced.
    Returns the blocks applied. bitcoind down: logged, the next pass resumes from the
    stored tip."""
    from chain.errors import ChainUnavailable
    try:
        follower = _follower(self)
        reports = follower.run_woken() if woken else [follower.run_once()]
    except ChainUnavailable:
        log.warning("chain follower: bitcoind unavailable")
        return 0
    applied, undone = sum(r.blocks_applied for r in reports), sum(r.blocks_undone for r in reports)
    if applied or undone:
        log.info("chain follower: %d block(s) applied, %d undone, tip %s", applied, undone, reports[-1].tip_height)
    return applied


_followers: dict[int, object] = {}


def _follower(task):
    """One Follower per Celery app per process (it remembers the node's getblock
    verbosity and the last mempool sequence between passes)."""
    from config.bootstrap import chain_follower
    key = id(task.app)
    if key not in _followers:
        _followers[key] = chain_follower(_settings(task), lock_wait=2.0)
    return _followers[key]
