"""Wake the block follower from Bitcoin Core's ZMQ notifications (`BITCOIND_ZMQ_URL`).

Core publishes multipart messages [topic, body, 4-byte little-endian sequence]:
`hashblock` (body: the 32-byte block hash, RPC byte order) on every new tip, and
`sequence` (body: 32-byte hash + label `C` block connected / `D` disconnected / `A` tx
added / `R` tx removed, + for A/R the 8-byte little-endian mempool sequence). Any of
them means "run a pass now". Wake-ups are debounced (a mempool flood becomes one pass
per `debounce` seconds); the pass itself reads everything from RPC, so a lost or
malformed message costs nothing but latency (beat runs a pass every few seconds anyway).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger("custos.chain")
TOPICS = (b"hashblock", b"sequence")
DEBOUNCE = 0.5        # seconds between two wake-ups at most


@dataclass(frozen=True)
class Notification:
    topic: str
    hash: str | None = None
    label: str | None = None
    mempool_sequence: int | None = None
    sequence: int | None = None


def parse(parts: list[bytes]) -> Notification | None:
    """A Core ZMQ message, or None when it is not one of ours / malformed."""
    if len(parts) != 3 or parts[0] not in TOPICS or len(parts[2]) != 4:
        return None
    topic, body, seq = parts[0].decode(), parts[1], int.from_bytes(parts[2], "little")
    if topic == "hashblock":
        return Notification(topic, body.hex(), sequence=seq) if len(body) == 32 else None
    if len(body) not in (33, 41) or body[32:33] not in (b"C", b"D", b"A", b"R"):
        return None
    label = body[32:33].decode()
    mseq = int.from_bytes(body[33:41], "little") if len(body) == 41 else None
    return Notification(topic, body[:32].hex(), label, mseq, seq)


def listen(url: str, wake: Callable[[], None], stop: threading.Event, *, debounce: float = DEBOUNCE) -> None:
    """Subscribe to `url` until `stop` is set; call `wake()` (at most once per
    `debounce` seconds) for each notification. Never raises for a bad message."""
    import zmq
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    for topic in TOPICS:
        sock.setsockopt(zmq.SUBSCRIBE, topic)
    sock.connect(url)
    last, pending = 0.0, False
    try:
        while not stop.is_set():
            if sock.poll(100):
                while True:
                    try:
                        parts = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    pending = pending or parse(parts) is not None
            if pending and time.monotonic() - last >= debounce:
                pending, last = False, time.monotonic()
                try:
                    wake()
                except Exception as exc:  # the broker may be down: beat's pass still comes
                    log.warning("zmq wake-up failed: %s", type(exc).__name__)
    finally:
        sock.close()


def start(url: str, wake: Callable[[], None], *, debounce: float = DEBOUNCE) -> tuple[threading.Thread, threading.Event]:
    """Run `listen` in a daemon thread; returns (thread, stop event)."""
    stop = threading.Event()
    thread = threading.Thread(target=listen, args=(url, wake, stop), kwargs={"debounce": debounce},
                              name="custos-zmq-wake", daemon=True)
    thread.start()
    return thread, stop
