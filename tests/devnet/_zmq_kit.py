"""Test-side ZMQ subscriber for the node's notifications (devnet or bitcoind -zmqpub*)."""
from __future__ import annotations

import time

import zmq

from chain.zmqwake import parse


def subscribe(url: str, topics=(b"hashblock", b"sequence")):
    """A SUB socket on `url` for `topics`, its subscription already at the publisher."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    for topic in topics:
        sock.setsockopt(zmq.SUBSCRIBE, topic)
    sock.connect(url)
    time.sleep(0.3)           # slow joiner: let the subscription reach the publisher
    return sock


def collect(sock, done, timeout: float = 10.0) -> list:
    """Parsed notifications (chain.zmqwake.Notification) until `done(got)` or `timeout` s."""
    got, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline and not done(got):
        if sock.poll(100):
            n = parse(sock.recv_multipart())
            if n is not None:
                got.append(n)
    return got
