"""Wake the block follower from Bitcoin Core's ZMQ notifications (`BITCOIND_ZMQ_URL`),
and hand the mempool notifications to the feed (chain.feed) so a pass applies only what
changed.

Core publishes multipart messages [topic, body, 4-byte little-endian sequence]:
`hashblock` (body: the 32-byte block hash, RPC byte order) on every new tip, and
`sequence` (body: 32-byte hash + label `C` block connected / `D` disconnected / `A` tx
added / `R` tx removed for a non-block reason, + for A/R the 8-byte little-endian
mempool sequence). Any of them means "run a pass now". Wake-ups are debounced (a
mempool flood becomes one pass per `debounce` seconds). The `sequence` topic's own
counter must go up by one per message: when it does not (messages dropped at either
end's high-water mark, or bitcoind restarted), the batch starts with a gap and the next
pass takes a full snapshot. A lost or malformed message costs at most a snapshot; beat
runs a pass every few seconds anyway.
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
RECEIVE_HWM = 100_000  # messages queued in the subscriber before ZMQ drops (a gap)


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


class _Sequence:
    """The mempool notifications of one listener run, and whether the `sequence` topic's
    counter has been continuous since the last batch was recorded."""

    def __init__(self):
        self.last: int | None = None
        self.gap = False
        self.batch: list[Notification] = []

    def see(self, n: Notification) -> None:
        if n.topic != "sequence":
            return
        if self.last is None or n.sequence != (self.last + 1) & 0xFFFFFFFF:
            self.gap, self.batch = True, []      # the first of this run, or messages lost
        self.last = n.sequence
        if n.label in ("A", "R"):
            self.batch.append(n)

    def flush(self, record) -> None:
        if self.gap or self.batch:
            ok = record(self.batch, self.gap)
            self.batch, self.gap = [], not ok


def listen(url: str, wake: Callable[[], None], stop: threading.Event, *, debounce: float = DEBOUNCE,
           feed=None) -> None:
    """Subscribe to `url` until `stop` is set; call `wake()` (at most once per
    `debounce` seconds) for each notification. With `feed` (chain.feed.FeedWriter),
    the mempool notifications are recorded just before each wake-up, and `feed.stopped()`
    is recorded on exit. Never raises for a bad message."""
    import zmq
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, RECEIVE_HWM)
    for topic in TOPICS:
        sock.setsockopt(zmq.SUBSCRIBE, topic)
    sock.connect(url)
    last, pending = 0.0, False
    seq = _Sequence()
    try:
        while not stop.is_set():
            if sock.poll(100):
                while True:
                    try:
                        parts = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    n = parse(parts)
                    if n is not None:
                        pending = True
                        seq.see(n)
            if pending and time.monotonic() - last >= debounce:
                pending, last = False, time.monotonic()
                if feed is not None:
                    seq.flush(feed.record)
                try:
                    wake()
                except Exception as exc:  # the broker may be down: beat's pass still comes
                    log.warning("zmq wake-up failed: %s", type(exc).__name__)
    finally:
        sock.close()
        if feed is not None:
            feed.stopped()


def start(url: str, wake: Callable[[], None], *, debounce: float = DEBOUNCE,
          feed=None) -> tuple[threading.Thread, threading.Event]:
    """Run `listen` in a daemon thread; returns (thread, stop event)."""
    stop = threading.Event()
    thread = threading.Thread(target=listen, args=(url, wake, stop), kwargs={"debounce": debounce, "feed": feed},
                              name="custos-zmq-wake", daemon=True)
    thread.start()
    return thread, stop
