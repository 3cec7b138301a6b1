"""Messaging tasks: deliver pushes (at least once, with backoff), re-send pending ones
(beat), and expire old messages, invites and superseded signed prekeys (beat)."""
from __future__ import annotations

import datetime as dt
import functools
import logging

from celery import shared_task

from store.base import utcnow
from store.session import session_scope

log = logging.getLogger("custos.workers.messaging")
_senders: dict[int, object] = {}


def _settings(task):
    return task.app.custos_settings


def _sender(settings):
    """One push sender per settings object per process (built on first use)."""
    key = id(settings)
    if key not in _senders:
        from config.bootstrap import push_sender
        _senders[key] = push_sender(settings)
    return _senders[key]


@shared_task(bind=True, name="workers.messaging_tasks.deliver_notification", max_retries=12)
def deliver_notification(self, notification_id: str) -> str:
    """Send one push. Transient failures (429, 5xx, network) retry this task with
    exponential backoff; the row stays pending meanwhile, so the flusher re-sends it even
    if the retry message is lost. Safe to run twice (the row is claimed atomically and the
    provider deduplicates on the idempotency key)."""
    from messaging.push import deliver
    settings = _settings(self)
    outcome = deliver(functools.partial(session_scope, settings.database_url), notification_id,
                      _sender(settings), now=utcnow, retry_base=settings.push_retry_base)
    if outcome.state == "retry" and self.request.retries < self.max_retries:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.state


@shared_task(bind=True, name="workers.messaging_tasks.flush_notifications")
def flush_notifications(self) -> int:
    """Enqueue delivery of every push that is pending and due (or stuck). Idempotent.
    Returns how many were enqueued."""
    from messaging.push import deliver_due
    with session_scope(_settings(self).database_url) as session:
        ids = deliver_due(session, utcnow())
    for nid in ids:
        deliver_notification.delay(nid)
    return len(ids)


@shared_task(bind=True, name="workers.messaging_tasks.expire")
def expire(self) -> dict:
    """Delete messages past their TTL, invites expired more than a day ago and signed
    prekeys superseded longer than the grace period. Idempotent."""
    from messaging import contacts, notify, prekeys, queues
    settings = _settings(self)
    now = utcnow()
    with session_scope(settings.database_url) as session:
        result = {"messages": queues.expire(session, now),
                  "invites": contacts.purge_invites(session, now),
                  "signed_prekeys": prekeys.purge_superseded(
                      session, now, dt.timedelta(seconds=settings.signed_prekey_grace)),
                  "notifications": notify.purge_done(session, now)}
    log.info("messaging expiry: %s", result)
    return result
