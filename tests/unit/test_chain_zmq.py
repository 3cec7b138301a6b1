"""ZMQ wake-up: Core's message shapes parse, anything else is ignored, a burst of
notifications becomes one debounced wake-up (a real PUB socket, no node), and the
mempool notifications reach the feed with a gap marked wherever the topic's counter
does not go up by one."""
from __future__ import annotations

import threading
import time

import zmq

from sqlalchemy import select

from chain.feed import FeedWriter
from chain.model import MempoolFeed
from chain.zmqwake import Notification, _Sequence, parse, start
from devnet.harness import free_port
from store.session import session_scope
from tests.unit.chain_kit import sqlite_url


def test_parse_core_shapes_and_refuse_others():
    h = bytes(range(32))
    assert parse([b"hashblock", h, (7).to_bytes(4, "little")]).hash == h.hex()
    n = parse([b"sequence", h + b"A" + (9).to_bytes(8, "little"), (1).to_bytes(4, "little")])
    assert (n.label, n.mempool_sequence, n.sequence) == ("A", 9, 1)
    assert parse([b"sequence", h + b"C", b"\x00" * 4]).label == "C"
    for bad in ([b"rawtx", h, b"\x00" * 4], [b"hashblock", h[:31], b"\x00" * 4], [b"sequence", h + b"X", b"\x00" * 4],
                [b"hashblock", h]):
        assert parse(bad) is None


def test_a_burst_of_notifications_wakes_once_per_debounce():
    url = f"tcp://127.0.0.1:{free_port()}"
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(url)
    woken = []
    thread, stop = start(url, lambda: woken.append(time.monotonic()), debounce=0.3)
    try:
        deadline = time.monotonic() + 10
        while not woken and time.monotonic() < deadline:   # the subscription takes a moment
            pub.send_multipart([b"hashblock", b"\x11" * 32, b"\x00" * 4])
            time.sleep(0.05)
        assert woken
        first = len(woken)
        for i in range(200):
            pub.send_multipart([b"sequence", b"\x22" * 32 + b"A" + i.to_bytes(8, "little"), b"\x00" * 4])
        time.sleep(0.8)
        assert 1 <= len(woken) - first <= 3
    finally:
        stop.set()
        thread.join(timeout=5)
        pub.close()
    assert not thread.is_alive() and threading.active_count() >= 1


def _seq(counter, label="A", mempool_seq=5, txid="ab" * 32):
    return Notification("sequence", txid, label, mempool_seq if label in "AR" else None, counter)


def test_the_sequence_counter_marks_gaps_and_failed_writes():
    recorded = []

    def record(batch, gap, ok=True):
        recorded.append(([n.label for n in batch], gap))
        return ok
    s = _Sequence()
    s.see(Notification("hashblock", "cd" * 32, sequence=0))      # another topic: no batch, no gap yet
    s.flush(record)
    assert recorded == []
    for counter, label in ((7, "A"), (8, "C"), (9, "R")):
        s.see(_seq(counter, label))
    s.flush(record)
    assert recorded[-1] == (["A", "R"], True)                    # the first of the run is a gap
    s.see(_seq(10))
    s.see(_seq(12))                                              # 11 was lost: what came before is moot
    s.see(_seq(13, "R"))
    s.flush(record)
    assert recorded[-1] == (["A", "R"], True)
    s.see(_seq(0xFFFFFFFF))
    s.flush(lambda b, g: record(b, g, ok=False))                 # the write failed
    s.see(_seq(0))                                               # the counter wraps: no gap by itself
    s.flush(record)
    assert recorded[-2:] == [(["A"], True), (["A"], True)]
    s.see(_seq(1))
    s.flush(record)
    assert recorded[-1] == (["A"], False)


def test_the_listener_records_its_notifications_and_its_stop(tmp_path):
    url = f"tcp://127.0.0.1:{free_port()}"
    db = sqlite_url(tmp_path)
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(url)
    woken, writer = [], FeedWriter(db)
    thread, stop = start(url, lambda: woken.append(1), debounce=0.05, feed=writer)
    txid = bytes(range(32))
    counter = 0

    def send(label, mseq):
        nonlocal counter
        pub.send_multipart([b"sequence", txid + label + mseq.to_bytes(8, "little"), counter.to_bytes(4, "little")])
        counter += 1
    try:
        deadline = time.monotonic() + 10
        while not woken and time.monotonic() < deadline:   # the subscription takes a moment
            send(b"A", 100 + counter)
            time.sleep(0.05)
        time.sleep(0.2)
        send(b"R", 500)
        time.sleep(0.3)                                    # recorded before what follows
        counter += 1                                       # one message never sent: a gap
        send(b"A", 502)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(timeout=5)
        pub.close()
    with session_scope(db) as s:
        got = [(r.kind, r.mempool_seq, r.listener) for r in s.scalars(select(MempoolFeed).order_by(MempoolFeed.id))]
    assert got[0][0] == "G" and {g[2] for g in got} == {writer.listener}
    assert [g[:2] for g in got[-4:]] == [("R", 500), ("G", None), ("A", 502), ("X", None)]
    assert all(k == "A" for k, _, _ in got[1:-4])


def test_a_wake_up_is_a_woken_pass_that_expires_in_the_queue():
    from workers.celery_app import WAKE_EXPIRES, wake_follower
    sent = []

    class Broker:
        def send_task(self, name, **options):
            sent.append((name, options))
    wake_follower(Broker())()
    assert sent == [("workers.tasks.follow_chain", {"kwargs": {"woken": True}, "expires": WAKE_EXPIRES})]
