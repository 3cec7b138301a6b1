"""System status for operators: database, broker queue depths, workers seen recently,
beat's last run, bitcoind reachability, chain tip height and age, block-follower lag.

Every probe reports instead of raising; details name failure classes, never URLs with
credentials. Used by GET /v1/admin/status, the console dashboard and /metrics.
"""
from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from admin.limits import HEARTBEAT_RECENT
from workers.jobs import ScheduledJob, WorkerHeartbeat

QUEUES = ("celery",)


def _probe(fn) -> dict:
    started = time.perf_counter()
    try:
        out = {"ok": True, **(fn() or {})}
    except Exception as exc:  # a probe reports, it does not crash the page
        out = {"ok": False, "detail": type(exc).__name__}
    out["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return out


def database(session: Session) -> dict:
    def run():
        session.execute(text("SELECT 1"))
        return {"detail": session.get_bind().dialect.name}
    return _probe(run)


def queue_depths(settings, redis=None) -> dict:
    """Messages waiting per broker queue: Redis lists, or the embedded SQLAlchemy
    transport's visible rows."""
    def run():
        if settings.embedded_broker:
            from store.session import engine_for
            engine = engine_for(settings.broker_url[len("sqla+"):])
            with engine.connect() as conn:
                names = set(engine.dialect.get_table_names(conn))
                if not {"kombu_message", "kombu_queue"} <= names:
                    return {"queues": {q: 0 for q in QUEUES}, "detail": "embedded"}
                rows = conn.execute(text(
                    "SELECT q.name, COUNT(m.id) FROM kombu_queue q LEFT JOIN kombu_message m "
                    "ON m.queue_id = q.id AND m.visible = :v GROUP BY q.name"), {"v": True}).all()
            depths = {q: 0 for q in QUEUES} | {name: int(n) for name, n in rows}
            return {"queues": depths, "detail": "embedded"}
        import redis as redis_lib
        client = redis if (redis is not None and settings.broker_url == settings.redis_url) else \
            redis_lib.Redis.from_url(settings.broker_url, socket_timeout=3, socket_connect_timeout=3)
        return {"queues": {q: int(client.llen(q)) for q in QUEUES}, "detail": "redis"}
    return _probe(run)


def workers(session: Session, now: dt.datetime) -> dict:
    """Heartbeats: workers seen within HEARTBEAT_RECENT, and beat's last run."""
    def run():
        rows = session.scalars(select(WorkerHeartbeat)).all()
        beat_row = next((r for r in rows if r.name == "beat"), None)
        recent = sorted(r.name for r in rows if r.name != "beat" and now - r.seen_at <= HEARTBEAT_RECENT)
        beat_age = (now - beat_row.seen_at).total_seconds() if beat_row else None
        return {"workers_recent": recent, "workers_known": len([r for r in rows if r.name != "beat"]),
                "beat_last_run": beat_row.seen_at.isoformat() if beat_row else None,
                "beat_age_seconds": round(beat_age, 1) if beat_age is not None else None,
                "ok_workers": bool(recent),
                "ok_beat": beat_age is not None and beat_age <= HEARTBEAT_RECENT.total_seconds()}
    return _probe(run)


def jobs(session: Session, now: dt.datetime) -> dict:
    """Scheduled jobs: overdue pending ones and ones whose last attempt failed."""
    def run():
        rows = session.execute(select(ScheduledJob.state, ScheduledJob.due_at, ScheduledJob.last_error)
                               .where(ScheduledJob.state.in_(("pending", "running", "failed")))).all()
        overdue = [r for r in rows if r.state == "pending" and r.due_at <= now - dt.timedelta(minutes=5)]
        return {"overdue": len(overdue), "with_errors": len([r for r in rows if r.last_error]),
                "failed": len([r for r in rows if r.state == "failed"])}
    return _probe(run)


def chain(session: Session, rpc, now: dt.datetime) -> dict:
    """bitcoind reachable, tip height and age, and the block follower's lag: blocks
    between the node's tip and the chain index's tip (None before its first pass)."""
    def run():
        from chain.coins import tip_height
        node = rpc.with_timeout(3)
        info = node.call("getblockchaininfo")
        tip = node.call("getblockheader", info["bestblockhash"])
        tip_time = dt.datetime.fromtimestamp(int(tip["time"]), dt.timezone.utc)
        indexed = tip_height(session)
        lag = int(info["blocks"]) - indexed if indexed is not None else int(info["blocks"])
        return {"chain": info.get("chain"), "height": int(info["blocks"]), "tip_time": tip_time.isoformat(),
                "tip_age_seconds": round((now - tip_time).total_seconds(), 1),
                "indexed_height": indexed, "watcher_lag_blocks": max(0, lag)}
    return _probe(run)


def system_status(session: Session, settings, redis, rpc, now: dt.datetime) -> dict:
    report = {"database": database(session), "broker": queue_depths(settings, redis),
              "workers": workers(session, now), "jobs": jobs(session, now), "bitcoind": chain(session, rpc, now),
              "checked_at": now.isoformat()}
    w = report["workers"]
    report["ok"] = all(report[k]["ok"] for k in ("database", "broker", "bitcoind")) and \
        w["ok"] and w.get("ok_workers", False) and w.get("ok_beat", False)
    return report
