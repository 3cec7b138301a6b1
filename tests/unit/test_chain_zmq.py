"""ZMQ wake-up: Core's message shapes parse, anything else is ignored, and a burst of
notifications becomes one debounced wake-up (a real PUB socket, no node)."""
from __future__ import annotations

import threading
import time

import zmq

from chain.zmqwake import parse, start
from devnet.harness import free_port


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
