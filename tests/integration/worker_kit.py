"""Real Celery worker processes for the integration tests, and the "killed mid-step"
scenario shared by the recovery and inheritance release tests: a row lock makes the
first worker block inside the step, it is killed with SIGKILL, the clock passes the
job's STALE_AFTER, and the reconciler hands the job to a second worker."""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select, text

from store.base import utcnow
from store.session import engine_for, session_scope
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def broker_url(redis_url, tmp_path) -> str:
    if not redis_url:
        return f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    from tests.services import worker_broker_url
    return worker_broker_url(redis_url)


def start_worker(env, log_path, name):
    log = open(log_path, "a")
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--concurrency", "1",
                             "--without-gossip", "--without-mingle", "-n", f"{name}-{os.getpid()}@%h"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True), log


def stop(proc, sig=signal.SIGTERM):
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def kill_mid_step_then_finish(settings, env, log_path, *, table: str, subject: str, unchanged, finished):
    """Lock `table`'s row `subject`, let a first worker claim the subject's due job and
    block on the lock, SIGKILL it, check `unchanged()` (the step died with it) and that
    the job is left `running`, age the job past STALE_AFTER, start a second worker and
    wait for `finished()` (returned). Returns (finished value, job id)."""
    from workers.celery_app import make_celery
    from workers.jobs import ScheduledJob
    db, celery = settings.database_url, make_celery(settings)
    blocker = engine_for(db).connect()
    tx = blocker.begin()
    blocker.execute(text(f"SELECT id FROM {table} WHERE id = :id FOR UPDATE"), {"id": subject})
    first, log1 = start_worker(env, log_path, "first")
    try:
        celery.send_task("workers.tasks.reconcile")

        def running():
            with session_scope(db) as s:
                return s.scalar(select(ScheduledJob.id).where(ScheduledJob.subject == subject,
                                                              ScheduledJob.state == "running"))
        job_id = wait_for(running, what="the first worker to claim the job", log_path=log_path)
        time.sleep(0.5)   # it is now waiting on the row lock, mid-step
        stop(first, signal.SIGKILL)
    finally:
        tx.rollback()
        blocker.close()
        stop(first)
        log1.close()
    assert unchanged()
    with session_scope(db) as s:
        job = s.get(ScheduledJob, job_id)
        assert job.state == "running" and job.attempts == 1
        job.started_at = utcnow() - dt.timedelta(minutes=11)         # the clock passes STALE_AFTER
    second, log2 = start_worker(env, log_path, "second")
    try:
        celery.send_task("workers.tasks.reconcile")
        return wait_for(finished, what="the reconciler and the second worker to finish the step",
                        log_path=log_path), job_id
    finally:
        stop(second)
        log2.close()


def worker_env(db_url: str, broker: str, master_key: str) -> dict:
    env = {**os.environ, "CUSTOS_ENV": "test", "DATABASE_URL": db_url, "BROKER_URL": broker, "MASTER_KEY": master_key,
           "LOG_JSON": "0", "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
    env.pop("REDIS_URL", None)
    return env
