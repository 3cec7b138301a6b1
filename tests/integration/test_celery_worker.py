"""A real Celery worker process runs tasks from the real broker (Redis when reachable,
the embedded SQLAlchemy transport otherwise) against the real database."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from devices.nonces import UsedNonce
from store.base import utcnow
from store.session import session_scope
from tests.waiting import wait_for
from workers.jobs import ScheduledJob, WorkerHeartbeat, schedule

ROOT = Path(__file__).resolve().parents[2]


def broker_for(redis_url: str | None, tmp_path: Path) -> str:
    """A Redis db kept apart from the db the tests flush (tests.services.worker_broker_url),
    or an embedded SQLite broker."""
    if not redis_url:
        return f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    from tests.services import worker_broker_url
    return worker_broker_url(redis_url)


@pytest.fixture(scope="module")
def worker(database_url, redis_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("worker")
    broker = broker_for(redis_url, tmp)
    if redis_url:
        import redis as redis_lib
        redis_lib.Redis.from_url(broker).flushdb()
    env = {**os.environ, "CUSTOS_ENV": "test", "DATABASE_URL": database_url, "BROKER_URL": broker,
           "LOG_JSON": "0", "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
    env.pop("REDIS_URL", None)
    log = open(tmp / "worker.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker",
                             "--concurrency", "2", "--without-gossip", "--without-mingle",
                             "-n", f"test-{os.getpid()}@%h"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    from tests.conftest import make_settings
    from workers.celery_app import make_celery
    celery = make_celery(make_settings(database_url, None, broker))
    yield celery, proc, tmp / "worker.log"
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_worker_runs_a_task_from_the_broker(worker, clean_db):
    celery, proc, log_path = worker
    celery.send_task("workers.tasks.heartbeat", kwargs={"name": "probe"})

    def seen():
        with session_scope(clean_db) as s:
            return s.get(WorkerHeartbeat, "probe")
    row = wait_for(seen, what="heartbeat row", log_path=log_path)
    assert (utcnow() - row.seen_at) < dt.timedelta(minutes=1)
    assert proc.poll() is None


def test_purge_task_deletes_only_expired_nonces(worker, clean_db):
    celery, _proc, log_path = worker
    now = utcnow()
    with session_scope(clean_db) as s:
        s.add_all([UsedNonce(key="old" + "0" * 61, expires_at=now - dt.timedelta(seconds=1)),
                   UsedNonce(key="new" + "0" * 61, expires_at=now + dt.timedelta(minutes=10))])
    celery.send_task("workers.tasks.purge_expired_nonces")

    def remaining():
        with session_scope(clean_db) as s:
            keys = set(s.scalars(select(UsedNonce.key)))
            return keys if keys == {"new" + "0" * 61} else None
    assert wait_for(remaining, what="expired nonce purge", log_path=log_path)


def test_reconciler_finds_due_job_in_database_and_worker_runs_it(worker, clean_db):
    """The job is only in the database (no message was ever sent for it): the reconcile
    task finds it, enqueues run_job, and the worker runs the handler exactly once."""
    from audit.model import AuditEvent
    celery, _proc, log_path = worker
    with session_scope(clean_db) as s:
        job_id = schedule(s, "audit.verify", "nightly", utcnow() - dt.timedelta(seconds=1)).id
        future_id = schedule(s, "audit.verify", "tomorrow", utcnow() + dt.timedelta(days=1)).id
    celery.send_task("workers.tasks.reconcile")

    def done():
        with session_scope(clean_db) as s:
            return s.get(ScheduledJob, job_id).state == "done"
    wait_for(done, what="scheduled job done", log_path=log_path)
    with session_scope(clean_db) as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "audit.verified")).all()
        assert [(e.subject, e.details["ok"]) for e in events] == [("nightly", True)]
        assert s.get(ScheduledJob, future_id).state == "pending"
        assert s.get(ScheduledJob, job_id).attempts == 1


def test_a_failing_job_records_its_error_and_is_not_left_running(worker, clean_db):
    """Issue #14: the failure handler read `job.kind` on an instance detached by the
    rollback (DetachedInstanceError), so `last_error` was never written and the job stayed
    `running`, retried blind. Here the handler fails for good (no such recovery case)."""
    celery, _proc, log_path = worker
    with session_scope(clean_db) as s:
        job_id = schedule(s, "recovery.advance", "rcase_does_not_exist", utcnow() - dt.timedelta(seconds=1)).id
    celery.send_task("workers.tasks.run_job", args=[job_id])

    def failed():
        with session_scope(clean_db) as s:
            job = s.get(ScheduledJob, job_id)
            return job if job.last_error else None
    job = wait_for(failed, what="the job's recorded failure", log_path=log_path)
    assert job.state == "pending" and job.attempts == 1
    assert job.last_error == "CaseNotFound"
    assert job.due_at > utcnow() + dt.timedelta(seconds=20), "a failed job backs off before its retry"
    assert "DetachedInstanceError" not in Path(log_path).read_text()
