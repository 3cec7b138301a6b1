"""Messaging work done by a real Celery worker: push delivery through the OneSignal sender
against a local HTTP server that checks what the real API expects (transient errors
retried with backoff, one idempotency key), the beat flusher re-sending a notification
nobody enqueued, and the TTL expiry job."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from devices.model import Device
from messaging.errors import PermanentPushError, TransientPushError
from messaging.model import Notification
from messaging.notify import notify
from messaging.push import OneSignalSender, Push
from store.base import utcnow
from store.session import session_scope
from tests.integration.messaging_worker import FakeOneSignal, broker_for, start_worker, stop
from tests.waiting import wait_for

APP_ID = "8250eaf6-1a58-489e-b136-7c74a864b434"
API_KEY = "os_v2_app_test_key"


def check_request(req, device_id, notification_id):
    assert req["path"].startswith("/notifications")
    assert req["headers"]["Authorization"] == f"Key {API_KEY}"
    body = req["json"]
    assert body["app_id"] == APP_ID
    assert body["include_aliases"] == {"external_id": [device_id]}
    assert body["target_channel"] == "push"
    assert body["idempotency_key"] == notification_id
    assert body["data"] == {"kind": "sync"} and body["content_available"] is True
    assert "contents" not in body and "headings" not in body     # content-free


def test_onesignal_sender_request_and_error_classes():
    with FakeOneSignal() as fake:
        sender = OneSignalSender(APP_ID, API_KEY, host=fake.url, timeout=5)
        push = Push(str(uuid.uuid4()), "dev_abc", "sync")
        fake.script = [429, 503, 400]
        with pytest.raises(TransientPushError) as err:
            sender.send(push)
        assert err.value.retry_after == 1.0
        with pytest.raises(TransientPushError):
            sender.send(push)
        with pytest.raises(PermanentPushError):
            sender.send(push)
        sender.send(push)
        assert len(fake.requests) == 4
        for req in fake.requests:
            check_request(req, "dev_abc", push.id)


def test_unreachable_onesignal_is_transient():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sender = OneSignalSender(APP_ID, API_KEY, host=f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(TransientPushError):
        sender.send(Push(str(uuid.uuid4()), "dev_x", "sync"))


@pytest.fixture
def device(clean_db):
    with session_scope(clean_db) as s:
        s.add(Device(id="dev_push_target", key_type="ed25519", public_key=b"\0" * 32, key_fingerprint="fp-push",
                     created_at=utcnow()))
    return "dev_push_target"


@pytest.fixture(scope="module")
def onesignal_worker(database_url, redis_url, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("msg-worker")
    with FakeOneSignal() as fake:
        broker = broker_for(redis_url, tmp_path)
        if redis_url:
            import redis as redis_lib
            redis_lib.Redis.from_url(broker).flushdb()
        proc = start_worker(database_url, broker, tmp_path / "worker.log", ONESIGNAL_APP_ID=APP_ID,
                            ONESIGNAL_API_KEY=API_KEY, ONESIGNAL_HOST=fake.url, PUSH_RETRY_BASE="0.2")
        from tests.conftest import make_settings
        from workers.celery_app import make_celery
        celery = make_celery(make_settings(database_url, None, broker))
        try:
            yield fake, celery, tmp_path / "worker.log"
        finally:
            stop(proc)


def state_of(url, nid):
    with session_scope(url) as s:
        return s.get(Notification, nid)


def test_worker_retries_429_then_delivers_once_with_one_idempotency_key(onesignal_worker, device, clean_db):
    fake, celery, log = onesignal_worker
    fake.requests.clear()
    fake.script = [429]
    with session_scope(clean_db) as s:
        nid = notify(s, device, "sync", utcnow()).id
    celery.send_task("workers.messaging_tasks.deliver_notification", args=[nid])
    row = wait_for(lambda: (r := state_of(clean_db, nid)).state == "delivered" and r, timeout=30,
                   what="delivered notification", log_path=log)
    assert row.attempts == 2 and row.channel == "onesignal"
    assert len(fake.requests) == 2
    for req in fake.requests:
        check_request(req, device, nid)
    assert "os_v2_app_test_key" not in log.read_text()


def test_flusher_sends_pending_notifications_nobody_enqueued(onesignal_worker, device, clean_db):
    fake, celery, log = onesignal_worker
    fake.requests.clear()
    with session_scope(clean_db) as s:
        nid = notify(s, device, "sync", utcnow()).id
    celery.send_task("workers.messaging_tasks.flush_notifications")
    wait_for(lambda: state_of(clean_db, nid).state == "delivered", timeout=30, what="flushed push", log_path=log)
    assert [r["json"]["idempotency_key"] for r in fake.requests] == [nid]
    with session_scope(clean_db) as s:   # nothing left to flush
        assert s.scalars(select(Notification).where(Notification.state != "delivered")).all() == []


def test_expiry_job_deletes_only_expired_messages(onesignal_worker, device, clean_db):
    import datetime as dt
    from messaging.model import Message
    _fake, celery, log = onesignal_worker
    now = utcnow()
    with session_scope(clean_db) as s:
        for guid, expires in (("old", now - dt.timedelta(seconds=1)), ("new", now + dt.timedelta(days=59))):
            s.add(Message(guid=guid, recipient_id=device, sender_id="dev_x", type=1, ciphertext=b"c",
                          server_timestamp=now - dt.timedelta(days=60), expires_at=expires))
    celery.send_task("workers.messaging_tasks.expire")

    def remaining():
        with session_scope(clean_db) as s:
            guids = set(s.scalars(select(Message.guid)))
            return guids if guids == {"new"} else None
    assert wait_for(remaining, timeout=30, what="expired messages deleted", log_path=log)
