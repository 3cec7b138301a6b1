"""Messaging against the real database (PostgreSQL when reachable, required under CI)
and Redis: atomic prekey hand-out under concurrency, TTL, and durability across a Redis
wipe."""
from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select

from devices.model import Device
from messaging import prekeys, queues
from messaging.model import Contact, Message
from store.base import utcnow
from store.session import session_scope
from tests.conftest import flask_transport
from tests.messaging_kit import b64, befriend, key_upload, registered


def add_devices(url, *ids):
    with session_scope(url) as s:
        for i in ids:
            s.add(Device(id=i, key_type="ed25519", public_key=b"\0" * 32, key_fingerprint="fp-" + i,
                         created_at=utcnow()))


def befriend_rows(url, owner, others):
    with session_scope(url) as s:
        for n, o in enumerate(others):
            a, b = sorted((owner, o))
            s.add(Contact(id=f"con_{n}", device_a=a, device_b=b, created_at=utcnow()))


def test_concurrent_bundle_fetches_never_share_a_prekey(require_postgres, clean_db):
    """16 requesters × 4 fetches race for 50 one-time prekeys on PostgreSQL: each key is
    handed out exactly once, the other 14 fetches get the last-resort key."""
    owner, requesters = "dev_owner", [f"dev_req{i}" for i in range(16)]
    add_devices(clean_db, owner, *requesters)
    befriend_rows(clean_db, owner, requesters)
    with session_scope(clean_db) as s:
        prekeys.upload(s, owner, prekeys.parse_upload(key_upload(50)[0]), now=utcnow())
    barrier = threading.Barrier(len(requesters))
    results, errors = [], []
    lock = threading.Lock()

    def run(requester):
        try:
            barrier.wait(timeout=30)
            for _ in range(4):
                with session_scope(clean_db) as s:
                    bundle = prekeys.fetch_bundle(s, requester, owner, now=utcnow())
                with lock:
                    results.append(bundle)
        except Exception as exc:  # surfaced below
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(r,)) for r in requesters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    one_time = [b.one_time_prekey.key_id for b in results if not b.last_resort]
    assert len(results) == 64
    assert sorted(one_time) == list(range(1, 51)), "every prekey handed out exactly once"
    assert sum(b.last_resort for b in results) == 14
    with session_scope(clean_db) as s:
        assert prekeys.count(s, owner) == 0


def test_take_one_time_prekey_skips_rows_locked_by_another_transaction(require_postgres, clean_db):
    """While one transaction holds the oldest key (uncommitted), another gets the next one
    instead of waiting or getting the same."""
    add_devices(clean_db, "dev_o")
    with session_scope(clean_db) as s:
        prekeys.upload(s, "dev_o", prekeys.parse_upload(key_upload(3)[0]), now=utcnow())
    from sqlalchemy.orm import sessionmaker
    from store.session import engine_for
    factory = sessionmaker(bind=engine_for(clean_db))
    with factory() as first, factory() as second:
        k1 = prekeys.take_one_time_prekey(first, "dev_o")
        k2 = prekeys.take_one_time_prekey(second, "dev_o")
        assert (k1.key_id, k2.key_id) == (1, 2)
        first.rollback()      # the first key goes back to the pool
        second.commit()
    with session_scope(clean_db) as s:
        assert prekeys.count(s, "dev_o") == 2
        assert prekeys.take_one_time_prekey(s, "dev_o").key_id == 1


def test_ttl_hides_and_expiry_deletes(clean_db):
    add_devices(clean_db, "dev_a", "dev_b")
    befriend_rows(clean_db, "dev_a", ["dev_b"])
    t0 = utcnow()
    ttl = dt.timedelta(days=60)
    with session_scope(clean_db) as s:
        queues.send(s, "dev_a", [queues.Envelope("dev_b", b"first")], now=t0, ttl=ttl)
        queues.send(s, "dev_a", [queues.Envelope("dev_b", b"second")], now=t0 + dt.timedelta(days=1), ttl=ttl)
    later = t0 + ttl + dt.timedelta(seconds=1)
    with session_scope(clean_db) as s:
        assert [m.ciphertext for m in queues.fetch(s, "dev_b", now=later).messages] == [b"second"]
        assert queues.expire(s, later) == 1
        assert queues.expire(s, later) == 0
        assert [m.ciphertext for m in s.scalars(select(Message))] == [b"second"]


def test_wiping_redis_loses_no_message(require_redis, settings_factory, app_factory, clean_db):
    """Redis holds only rate-limit counters and nonces: FLUSHDB on the test Redis between
    sending and fetching changes nothing about the queue (and guids stay stable)."""
    import redis as redis_lib
    settings = settings_factory()
    assert settings.redis_url
    app = app_factory(settings)
    t = flask_transport(app)
    a, b = registered(t), registered(t)
    befriend(a, b)
    sent = [a.send_envelopes([{"to": b.device_id, "ciphertext": b64(f"c{i}".encode())}])[0]["guid"]
            for i in range(5)]
    before = [m["guid"] for m in b.fetch_messages()["messages"]]
    redis_lib.Redis.from_url(settings.redis_url).flushdb()      # "Redis restarted, empty"
    after = b.fetch_messages()
    assert [m["guid"] for m in after["messages"]] == sent == before
    for guid in sent:
        b.ack(guid)
    assert b.fetch_messages()["messages"] == []
    a.send_envelopes([{"to": b.device_id, "ciphertext": b64(b"after the wipe")}])
    assert len(b.fetch_messages()["messages"]) == 1


def test_registered_rule_opens_messaging_between_non_contacts(clean_db):
    """The hook the recovery flow fills: a rule may allow a non-contact; removing it closes
    the door again."""
    from messaging.errors import NotPermitted
    from messaging.permissions import may_message, register_rule, unregister_rule
    add_devices(clean_db, "dev_recovering", "dev_guardian")

    def recovering_device_may_reach_guardian(session, sender, recipient, now):
        return (sender, recipient) == ("dev_recovering", "dev_guardian")

    register_rule(recovering_device_may_reach_guardian)
    try:
        with session_scope(clean_db) as s:
            assert may_message(s, "dev_recovering", "dev_guardian")
            assert not may_message(s, "dev_guardian", "dev_recovering")
            queues.send(s, "dev_recovering", [queues.Envelope("dev_guardian", b"sealed share request")],
                        now=utcnow(), ttl=dt.timedelta(days=1))
    finally:
        unregister_rule(recovering_device_may_reach_guardian)
    with session_scope(clean_db) as s, pytest.raises(NotPermitted):
        queues.send(s, "dev_recovering", [queues.Envelope("dev_guardian", b"x")], now=utcnow(),
                    ttl=dt.timedelta(days=1))


# -- push collapse: one push per device and kind per window (issue #19) ----------------
def _pushes(url, device_id):
    from messaging.model import Notification
    with session_scope(url) as s:
        return [(n.state, n.next_attempt_at) for n in s.scalars(
            select(Notification).where(Notification.device_id == device_id).order_by(Notification.created_at))]


def test_a_burst_makes_one_push_now_and_one_trailing_push(clean_db):
    from messaging import notify as notes
    add_devices(clean_db, "dev_burst")
    t0 = utcnow()
    with session_scope(clean_db) as s:
        first = notes.notify(s, "dev_burst", notes.SYNC, t0)
        assert s.info[notes.NEW_IN_SESSION] == {first.id: 0.0}
    with session_scope(clean_db) as s:   # absorbed while pending
        assert notes.notify(s, "dev_burst", notes.SYNC, t0 + dt.timedelta(seconds=1)).id == first.id
        assert notes.NEW_IN_SESSION not in s.info
    with session_scope(clean_db) as s:   # the worker sends it
        assert notes.claim(s, first.id, t0 + dt.timedelta(seconds=1)) is not None
        notes.mark_delivered(s, first.id, "outbox", t0 + dt.timedelta(seconds=1))
    later = []
    for i in range(20):                  # 20 more messages within the window
        with session_scope(clean_db) as s:
            later.append(notes.notify(s, "dev_burst", notes.SYNC, t0 + dt.timedelta(seconds=2, milliseconds=i)).id)
            pending = dict(s.info.get(notes.NEW_IN_SESSION, {}))
        if i == 0:
            assert pending == {later[0]: pytest.approx(3.0)}   # due when the window ends: t0 + 5 s
    assert len(set(later)) == 1
    rows = _pushes(clean_db, "dev_burst")
    assert [state for state, _ in rows] == ["delivered", "pending"]
    assert rows[1][1] == t0 + notes.COLLAPSE_WINDOW
    with session_scope(clean_db) as s:   # not due before the window ends, due after
        assert later[0] not in notes.due(s, t0 + dt.timedelta(seconds=4))
    with session_scope(clean_db) as s:
        assert later[0] in notes.due(s, t0 + dt.timedelta(seconds=6))


def test_a_quiet_device_is_pushed_at_once(clean_db):
    from messaging import notify as notes
    add_devices(clean_db, "dev_quiet")
    t0 = utcnow() - dt.timedelta(minutes=5)
    with session_scope(clean_db) as s:
        first = notes.notify(s, "dev_quiet", notes.SYNC, t0)
        notes.claim(s, first.id, t0)
        notes.mark_delivered(s, first.id, "outbox", t0)
    with session_scope(clean_db) as s:
        second = notes.notify(s, "dev_quiet", notes.SYNC, t0 + dt.timedelta(minutes=1))
        assert second.id != first.id and second.next_attempt_at == t0 + dt.timedelta(minutes=1)
        assert s.info[notes.NEW_IN_SESSION] == {second.id: 0.0}
    with session_scope(clean_db) as s:   # another kind is not collapsed with sync
        other = notes.notify(s, "dev_quiet", notes.REPLENISH, t0 + dt.timedelta(minutes=1))
        assert other.next_attempt_at == t0 + dt.timedelta(minutes=1)
