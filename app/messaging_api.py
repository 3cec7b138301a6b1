"""/v1/messages: queue envelopes for other devices (≤ 50 per call), fetch the caller's
queue (oldest first, pages of ≤ 100), acknowledge by guid — one (DELETE) or up to 100 in
one call (POST /v1/messages/ack). Also the helpers the keys and contacts
blueprints share: rate-limit checks and the after-commit push kick."""
from __future__ import annotations

import datetime as dt
import logging

from flask import current_app, g, has_app_context
from flask_smorest import Blueprint
from sqlalchemy import event
from sqlalchemy.orm import Session as SASession

from app.deps import deps
from app.errors import RateLimited
from app.extensions import db
from app.messaging_schemas import AckResultSchema, AckSchema, FetchArgsSchema, QueueSchema, SendSchema, SentListSchema
from app.ratelimit import hit
from app.transaction import committing
from app.auth.device import signed
from messaging import queues
from messaging.notify import NEW_IN_SESSION
from store.base import utcnow
from store.session import unsynced

log = logging.getLogger("custos.messaging")
bp = Blueprint("messages", __name__, url_prefix="/v1/messages", description="E2EE store-and-forward queues")
DELIVER_TASK = "workers.messaging_tasks.deliver_notification"


# -- shared helpers ------------------------------------------------------------
def limit(setting: str, what: str, *keys: str) -> None:
    """Count a hit against the fixed-window limit named by settings attribute `setting`;
    raise RateLimited (429 with Retry-After) when exceeded."""
    d = deps()
    retry = hit(d.limiter, getattr(d.settings, setting), *keys)
    if retry is not None:
        raise RateLimited(f"too many {what}; retry later", headers={"Retry-After": str(retry)},
                          details={"retry_after": retry})


def _extension(name: str, build):
    ext = current_app.extensions.setdefault("custos_messaging", {})
    if name not in ext:
        ext[name] = build()
    return ext[name]


def buckets():
    from config import bootstrap
    d = deps()
    return _extension("buckets", lambda: bootstrap.message_buckets(d.settings, d.redis))


def _producer():
    """A Celery app used only to send tasks by name (built once per Flask app)."""
    def build():
        from celery import Celery
        from config.celery import celery_config
        producer = Celery("custos-api", set_as_current=False)
        producer.conf.update(celery_config(deps().settings))
        producer.conf.broker_connection_timeout = 2
        return producer
    return _extension("producer", build)


def kick(ids) -> None:
    """Ask a worker to deliver these notifications: an iterable of ids (now) or a mapping
    id → seconds until due (a trailing push of a collapsed burst waits that long). Best
    effort: if the broker is unreachable the beat flusher sends them a little later (the
    rows are durable)."""
    if not ids:
        return
    delays = ids if isinstance(ids, dict) else dict.fromkeys(ids, 0)
    try:
        producer = _producer()
        for nid in sorted(delays):
            wait = delays[nid]
            producer.send_task(DELIVER_TASK, args=[nid], retry=False, countdown=wait if wait > 0 else None)
    except Exception as exc:  # the database is the truth; the flusher catches up
        log.warning("could not enqueue push delivery (%s); the flusher will send it", type(exc).__name__)


def _after_commit(session) -> None:
    ids = session.info.pop(NEW_IN_SESSION, None)
    if ids and has_app_context() and "custos" in current_app.extensions:
        kick(ids)


def _after_rollback(session) -> None:
    session.info.pop(NEW_IN_SESSION, None)


if not event.contains(SASession, "after_commit", _after_commit):
    event.listen(SASession, "after_commit", _after_commit)
    event.listen(SASession, "after_rollback", _after_rollback)


# -- views -----------------------------------------------------------------------
@bp.route("", methods=["POST"])
@signed
@bp.arguments(SendSchema())
@bp.response(201, SentListSchema)
def send(body):
    """Queue one or more envelopes `{to, ciphertext (base64, ≤ 64 KiB), type?}`. All or
    nothing: every recipient must be a contact (or allowed by a system rule). Each
    recipient gets a content-free push. Rate-limited per sender (token bucket)."""
    d = deps()
    envelopes = queues.parse_envelopes(body["messages"])
    if d.limiter.enabled:
        retry = buckets().take(g.device.id, len(envelopes))
        if retry is not None:
            raise RateLimited("too many messages; retry later", headers={"Retry-After": str(retry)},
                              details={"retry_after": retry})
    with committing():
        rows = queues.send(db.session, g.device.id, envelopes, now=utcnow(),
                           ttl=dt.timedelta(seconds=d.settings.message_ttl))
    return {"messages": rows}


@bp.route("", methods=["GET"])
@signed
@bp.arguments(FetchArgsSchema(), location="query")
@bp.response(200, QueueSchema)
def fetch(args):
    """The caller's queue, oldest first, at most `limit` (≤ 100) messages, and whether
    more follow. Messages stay until acknowledged (DELETE)."""
    page = queues.fetch(db.session, g.device.id, now=utcnow(), limit=args["limit"])
    return {"messages": page.messages, "more": page.more}


@bp.route("/<guid>", methods=["DELETE"])
@signed
@bp.response(204)
def acknowledge(guid):
    """Acknowledge (delete) a delivered message. Idempotent: an unknown guid is 204 too."""
    with unsynced(db.session.connection()), committing():   # a lost ack only redelivers
        queues.ack(db.session, g.device.id, guid)


@bp.route("/ack", methods=["POST"])
@signed
@bp.arguments(AckSchema())
@bp.response(200, AckResultSchema)
def acknowledge_many(body):
    """Acknowledge (delete) up to 100 delivered messages in one call, e.g. a whole fetched
    page. Idempotent: unknown guids, guids already acknowledged and other devices' guids
    are ignored; `deleted` counts what this call removed.

    On SQLite the deletion commits without an fsync (store.session.unsynced): one lost in a
    power failure only brings the messages back once more, and delivery is at least once
    anyway — clients recognise a guid they already have."""
    with unsynced(db.session.connection()), committing():
        return {"deleted": queues.ack_many(db.session, g.device.id, body["guids"])}
