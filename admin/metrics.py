"""Prometheus metrics, served off the public port.

- In-process instruments (this module's REGISTRY): request latency per endpoint (the URL
  rule, so cardinality stays bounded), method and status; Celery task failures.
- Read at scrape time from the database and bitcoind (the truth, shared by every API and
  worker process): spends by state, cosign decisions by action, recovery cases by state,
  message queue depth and oldest age, push/mail failures, scheduled jobs, chain tip age,
  block-follower lag, heartbeats.

`metrics_app(settings)` is a WSGI app answering `/metrics`. `create_app` serves it on
METRICS_BIND:METRICS_PORT in a thread when METRICS_PORT is set (one process); with
gunicorn workers and Celery set PROMETHEUS_MULTIPROC_DIR for them and run
`python -m admin.metrics_server` once per host instead (aggregates every process).
"""
from __future__ import annotations

import logging
import os
import threading
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger("custos.metrics")

REGISTRY = CollectorRegistry(auto_describe=True)
REQUEST_LATENCY = Histogram(
    "custos_http_request_duration_seconds", "API request latency by endpoint (URL rule), method and status",
    ["endpoint", "method", "status"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
TASK_FAILURES = Counter("custos_celery_task_failures", "Celery task runs that failed, by task",
                        ["task"], registry=REGISTRY)

_server_lock = threading.Lock()
_servers: dict = {}


_latency_children: dict = {}    # (endpoint, method, status) -> REQUEST_LATENCY child; bounded by the URL map


def observe_request(endpoint: str, method: str, status: int, seconds: float) -> None:
    """Record one request's latency (seconds). The labelled child is looked up once per
    (endpoint, method, status): `labels()` validates and locks on every call."""
    key = (endpoint, method, status)
    child = _latency_children.get(key)
    if child is None:
        child = _latency_children[key] = REQUEST_LATENCY.labels(endpoint, method, str(status))
    child.observe(seconds)


def task_failed(task_name: str) -> None:
    TASK_FAILURES.labels(task_name).inc()


def install(app) -> None:
    """Time every request of `app` (after_request; needs g.started set by create_app)."""
    from flask import g, request

    @app.after_request
    def _observe(response):
        started = g.get("started")
        if started is not None:
            req = request._get_current_object()     # one proxy lookup
            rule = req.url_rule.rule if req.url_rule is not None else "unmatched"
            observe_request(rule, req.method, response.status_code, time.perf_counter() - started)
        return response


class DatabaseCollector:
    """Gauges and counters computed from the database (and bitcoind) at scrape time."""

    def __init__(self, settings):
        self.settings = settings

    def collect(self):
        from store.session import session_scope
        errors = GaugeMetricFamily("custos_metrics_scrape_errors", "Sections that failed in this scrape",
                                   labels=["section"])
        families = []
        for name, fn in (("spends", self._spends), ("decisions", self._decisions), ("recovery", self._recovery),
                         ("messages", self._messages), ("outboxes", self._outboxes), ("jobs", self._jobs),
                         ("chain", self._chain), ("mempool_feed", self._mempool_feed)):
            try:
                with session_scope(self.settings.database_url) as session:
                    families.extend(fn(session))
                errors.add_metric([name], 0)
            except Exception as exc:  # one broken section must not hide the others
                log.warning("metrics section %s failed: %s", name, type(exc).__name__)
                errors.add_metric([name], 1)
        yield from families
        yield errors

    @staticmethod
    def _grouped(session, column, model):
        from sqlalchemy import func, select
        return session.execute(select(column, func.count()).select_from(model).group_by(column)).all()

    def _spends(self, session):
        from cosigner.model import SPEND_STATES, Spend
        g = GaugeMetricFamily("custos_spends", "Spends by state", labels=["state"])
        counts = dict(self._grouped(session, Spend.state, Spend))
        for state in SPEND_STATES:
            g.add_metric([state], counts.get(state, 0))
        return [g]

    def _decisions(self, session):
        from sqlalchemy import func, select
        from audit.model import AuditEvent
        action = AuditEvent.details["action"].as_string()
        rows = session.execute(select(action, func.count()).where(AuditEvent.action == "spend.decision")
                               .group_by(action)).all()
        c = CounterMetricFamily("custos_cosign_decisions", "Policy decisions on submitted spends, by action",
                                labels=["action"])
        counts = {k or "unknown": n for k, n in rows}
        for a in sorted(set(counts) | {"approve", "delay", "needs_approval", "deny"}):
            c.add_metric([a], counts.get(a, 0))
        return [c]

    def _recovery(self, session):
        try:
            from recovery.machine import STATES
            from recovery.model import RecoveryCase
        except ImportError:
            return []
        g = GaugeMetricFamily("custos_recovery_cases", "Recovery cases by state", labels=["state"])
        counts = dict(self._grouped(session, RecoveryCase.state, RecoveryCase))
        for state in STATES:
            g.add_metric([state], counts.get(state, 0))
        return [g]

    def _messages(self, session):
        from sqlalchemy import func, select
        from messaging.model import Message
        from store.base import utcnow
        depth, oldest = session.execute(select(func.count(), func.min(Message.server_timestamp))).one()
        if oldest is not None and oldest.tzinfo is None:
            import datetime as dt
            oldest = oldest.replace(tzinfo=dt.timezone.utc)
        age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
        return [GaugeMetricFamily("custos_message_queue_depth", "Undelivered E2EE messages", value=depth),
                GaugeMetricFamily("custos_message_queue_oldest_age_seconds", "Age of the oldest undelivered message",
                                  value=age)]

    def _outboxes(self, session):
        from messaging.model import Notification
        push = GaugeMetricFamily("custos_push_notifications", "Push notifications by state", labels=["state"])
        for state, n in self._grouped(session, Notification.state, Notification):
            push.add_metric([state], n)
        out = [push]
        from sqlalchemy import func, select
        push_fail = session.scalar(select(func.count()).select_from(Notification)
                                   .where(Notification.last_error.is_not(None))) or 0
        out.append(GaugeMetricFamily("custos_push_send_failures", "Push notifications whose last send failed",
                                     value=push_fail))
        try:
            from recovery.model import MailOutbox
        except ImportError:
            return out
        mail = GaugeMetricFamily("custos_mail_outbox", "Outgoing mail by state", labels=["state"])
        for state, n in self._grouped(session, MailOutbox.state, MailOutbox):
            mail.add_metric([state], n)
        mail_fail = session.scalar(select(func.count()).select_from(MailOutbox)
                                   .where(MailOutbox.last_error.is_not(None))) or 0
        out += [mail, GaugeMetricFamily("custos_mail_send_failures", "Mails whose last send failed", value=mail_fail)]
        return out

    def _jobs(self, session):
        from sqlalchemy import func, select
        from store.base import utcnow
        from workers.jobs import ScheduledJob, WorkerHeartbeat
        g = GaugeMetricFamily("custos_scheduled_jobs", "Scheduled jobs by state", labels=["state"])
        for state, n in self._grouped(session, ScheduledJob.state, ScheduledJob):
            g.add_metric([state], n)
        errs = session.scalar(select(func.count()).select_from(ScheduledJob)
                              .where(ScheduledJob.last_error.is_not(None), ScheduledJob.state != "done")) or 0
        hb = GaugeMetricFamily("custos_heartbeat_age_seconds", "Seconds since each worker/beat was seen",
                               labels=["name"])
        now = utcnow()
        for row in session.scalars(select(WorkerHeartbeat)):
            hb.add_metric([row.name], (now - row.seen_at).total_seconds())
        return [g, GaugeMetricFamily("custos_scheduled_job_errors", "Unfinished jobs whose last attempt failed",
                                     value=errs), hb]

    def _chain(self, session):
        from admin.status import chain
        from config.bootstrap import bitcoind
        from store.base import utcnow
        report = chain(session, bitcoind(self.settings), utcnow())
        out = [GaugeMetricFamily("custos_bitcoind_up", "Whether bitcoind answered", value=1 if report["ok"] else 0)]
        if report["ok"]:
            out += [GaugeMetricFamily("custos_chain_tip_height", "Best block height", value=report["height"]),
                    GaugeMetricFamily("custos_chain_tip_age_seconds", "Seconds since the best block's timestamp",
                                      value=report["tip_age_seconds"]),
                    GaugeMetricFamily("custos_chain_watcher_lag_blocks",
                                      "Blocks between the node's tip and the chain index's tip (block follower lag)",
                                      value=report["watcher_lag_blocks"])]
        return out


    @staticmethod
    def _mempool_feed(session):
        from chain import feed
        from store.base import utcnow
        st = feed.status(session, utcnow())
        out = [GaugeMetricFamily("custos_chain_mempool_feed_listening",
                                 "1 while follower passes can follow the ZMQ mempool feed (0: every pass snapshots)",
                                 value=1 if st["listening"] else 0),
               GaugeMetricFamily("custos_chain_mempool_feed_pending", "ZMQ mempool notifications not yet applied",
                                 value=st["pending"])]
        if st["snapshot_age_seconds"] is not None:
            out.append(GaugeMetricFamily("custos_chain_mempool_snapshot_age_seconds",
                                         "Seconds since the follower's last full getrawmempool snapshot",
                                         value=st["snapshot_age_seconds"]))
        return out


def scrape_registry(settings) -> CollectorRegistry:
    """The registry a scrape reads: this process's instruments (or every process's, in
    multiprocess mode) plus the database collector."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Forward(REGISTRY))
    registry.register(DatabaseCollector(settings))
    return registry


class _Forward:
    def __init__(self, source):
        self.source = source

    def collect(self):
        return self.source.collect()


def metrics_app(settings):
    """WSGI app: GET /metrics → Prometheus text exposition; anything else 404."""
    inner = make_wsgi_app(scrape_registry(settings))

    def app(environ, start_response):
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        return inner(environ, start_response)
    return app


def serve_in_thread(settings) -> int | None:
    """Serve metrics_app on METRICS_BIND:METRICS_PORT in a daemon thread, once per process.
    Returns the bound port, or None (not configured, or the port is taken — logged)."""
    if not settings.metrics_port:
        return None
    key = (settings.metrics_bind, settings.metrics_port)
    with _server_lock:
        if key in _servers:
            return _servers[key].server_port
        from werkzeug.serving import make_server
        try:
            server = make_server(settings.metrics_bind, settings.metrics_port, metrics_app(settings), threaded=True)
        except OSError as exc:
            log.warning("metrics listener not started on port %s: %s", settings.metrics_port, type(exc).__name__)
            return None
        threading.Thread(target=server.serve_forever, name="custos-metrics", daemon=True).start()
        _servers[key] = server
        log.info("metrics on http://%s:%s/metrics", settings.metrics_bind, server.server_port)
        return server.server_port
