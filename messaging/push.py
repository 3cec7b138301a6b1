"""Push senders behind one small interface.

`PushSender.send(notification)` delivers one content-free push or raises
TransientPushError (retry later) / PermanentPushError (give up). Two implementations:
`OneSignalSender` (production; the onesignal-python-api SDK, devices targeted by external
id = Custos device id, the notification id as idempotency key) and `OutboxSender` (the
embedded default: the row in `messaging_notifications` is the outbox; it logs a line).
`config.bootstrap.push_sender(settings)` chooses one. `deliver()` runs one notification
through a sender with the claim/mark bookkeeping of messaging.notify.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session

from messaging import notify as notes
from messaging.errors import PermanentPushError, TransientPushError

log = logging.getLogger("custos.push")


@dataclass(frozen=True)
class Push:
    """What a sender needs: who, what category, and the idempotency key. Nothing else
    ever leaves the server in a push."""
    id: str
    device_id: str
    kind: str

    def payload(self) -> dict:
        return {"kind": self.kind}


class PushSender:
    channel = "none"

    def send(self, push: Push) -> None:
        raise NotImplementedError


class OutboxSender(PushSender):
    """Embedded default: the notification row is the outbox; delivery is a log line."""
    channel = "outbox"

    def send(self, push: Push) -> None:
        log.info("push (outbox) id=%s device=%s kind=%s", push.id, push.device_id, push.kind)


class OneSignalSender(PushSender):
    """OneSignal REST API through onesignal-python-api. A data-only, content-available
    push (no visible text) carrying {"kind": …}."""
    channel = "onesignal"

    def __init__(self, app_id: str, api_key: str, host: str = "https://api.onesignal.com", timeout: float = 10.0):
        import onesignal
        from onesignal.api import default_api
        cfg = onesignal.Configuration(rest_api_key=api_key, host=host.rstrip("/"))
        cfg.retries = 0                    # retries are ours (task backoff), not urllib3's
        self._api = default_api.DefaultApi(onesignal.ApiClient(cfg))
        self._app_id = app_id
        self._timeout = timeout

    def send(self, push: Push) -> None:
        from onesignal.exceptions import ApiException, OpenApiException
        from onesignal.model.notification import Notification
        import urllib3
        note = Notification(app_id=self._app_id, include_aliases={"external_id": [push.device_id]},
                            target_channel="push", content_available=True, data=push.payload(),
                            idempotency_key=push.id)
        try:
            self._api.create_notification(note, _request_timeout=self._timeout)
        except ApiException as exc:
            status = exc.status or 0
            if status == 429 or status >= 500:
                raise TransientPushError(f"onesignal answered {status}",
                                         retry_after=_retry_after(exc)) from None
            raise PermanentPushError(f"onesignal answered {status}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransientPushError(f"onesignal unreachable: {type(exc).__name__}") from None
        except OpenApiException as exc:
            raise PermanentPushError(f"onesignal client error: {type(exc).__name__}") from None


def _retry_after(exc) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    try:
        value = float(headers.get("Retry-After"))
    except (TypeError, ValueError):
        return None
    return value if 0 <= value <= 3600 else None


@dataclass(frozen=True)
class Outcome:
    state: str                 # delivered | retry | failed | skipped
    retry_in: float | None = None


def deliver(sessions, notification_id: str, sender: PushSender, *, now, retry_base: float) -> Outcome:
    """Claim, send and record one notification. `sessions()` is a context manager giving
    a session in its own transaction (the send happens between two short transactions,
    never inside one). Safe to call twice: a delivered or claimed row is skipped."""
    with sessions() as session:
        row = notes.claim(session, notification_id, now())
        if row is None:
            return Outcome("skipped")
        push, attempts = Push(row.id, row.device_id, row.kind), row.attempts
    try:
        sender.send(push)
    except TransientPushError as exc:
        delay = exc.retry_after if exc.retry_after is not None else notes.backoff(attempts, retry_base)
        give_up = attempts >= notes.MAX_ATTEMPTS
        with sessions() as session:
            if give_up:
                notes.mark_failed(session, push.id, str(exc))
            else:
                notes.mark_retry(session, push.id, str(exc), now() + dt.timedelta(seconds=delay))
        log.warning("push %s to %s: %s (attempt %d)", push.id, push.device_id, exc, attempts)
        return Outcome("failed" if give_up else "retry", None if give_up else delay)
    except PermanentPushError as exc:
        with sessions() as session:
            notes.mark_failed(session, push.id, str(exc))
        log.error("push %s to %s failed for good: %s", push.id, push.device_id, exc)
        return Outcome("failed")
    with sessions() as session:
        notes.mark_delivered(session, push.id, sender.channel, now())
    return Outcome("delivered")


def deliver_due(session: Session, now: dt.datetime) -> list[str]:
    """The reconciler's query: ids of notifications to (re-)send."""
    return notes.due(session, now)
