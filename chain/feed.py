"""The mempool feed: Core's ZMQ `sequence` notifications as rows the follower applies, so
a pass reads what changed in the mempool instead of the whole mempool.

Writer (the ZMQ listener in beat, `FeedWriter.record`): each debounced batch of `A`/`R`
notifications becomes rows of `chain_mempool_feed` in one transaction. A `G` row goes
first when the listener receives its first `sequence` message, when the topic's ZMQ
counter skips (messages lost, or bitcoind restarted and counts from 0 again) and after a
write that failed; an `X` row when the listener stops.

Reader (the follower's pass, `plan`): the cursor row says which listener run continues
the last full snapshot, that snapshot's mempool sequence and time, and the last feed row
applied. A pass follows the feed ("feed" mode) when every row after the cursor is an
`A`/`R` of that listener run, there are at most MAX_ROWS of them and the snapshot is
younger than FULL_EVERY. Anything else ("full" mode) takes a `getrawmempool` snapshot
(chain.mempool) and moves the cursor to the newest listener run, or to none when the
newest marker is an `X` or there is no listener at all (then every pass is full, as
without ZMQ).

Core's numbering (doc/zmq.md; test/functional/interface_zmq.py, test_mempool_sync): each
added/removed notification carries the mempool sequence it used, and
`getrawmempool(false, true)` returns the next one, so a snapshot reflects exactly the
events numbered below it. A full pass records the newest feed row id it read BEFORE the
snapshot call; rows written later but numbered below the snapshot are skipped.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from chain.model import MempoolCursor, MempoolFeed
from store.base import utcnow
from store.session import engine_for

log = logging.getLogger("custos.chain")
FULL_EVERY = dt.timedelta(minutes=10)   # a full snapshot at least this often, whatever the feed says
MAX_ROWS = 20_000                       # more rows pending than this: a snapshot is cheaper
ADDED, REMOVED, GAP, STOPPED = "A", "R", "G", "X"


@dataclass
class Plan:
    """What a pass does with the mempool. `rows`: (id, kind, txid, mempool_seq) after the
    cursor, oldest first (feed mode only). `high`: the newest feed row when planned.
    `listener`: the listener run a full snapshot hands the cursor to (None: none)."""
    mode: str
    reason: str
    high: int
    listener: str | None
    baseline: int | None = None
    rows: list[tuple] = field(default_factory=list)
    after: int = 0                              # the cursor's feed row when planned
    cursor: tuple | None = None                 # the cursor's (listener, mempool_seq) when planned

    def as_full(self, reason: str) -> "Plan":
        return Plan("full", reason, self.high, self.listener, after=self.after, cursor=self.cursor)

    def moves_cursor(self, snapshot_sequence: int | None) -> bool:
        """False when `advance` would change nothing that matters: a feed plan with no
        rows, or a full one with no listener to hand over to, no new rows and the same
        snapshot sequence (an idle pass without ZMQ then writes nothing)."""
        if self.mode == "feed":
            return bool(self.rows)
        return (self.listener is not None or self.high != self.after
                or self.cursor != (None, snapshot_sequence))


def plan(session: Session, now: dt.datetime) -> Plan:
    """Read the cursor and the feed after it (two indexed reads, four on a backlog; no
    bitcoind call)."""
    cursor = session.get(MempoolCursor, 1)
    after = cursor.feed_id if cursor else 0
    rows = session.execute(select(MempoolFeed.id, MempoolFeed.kind, MempoolFeed.txid, MempoolFeed.mempool_seq,
                                  MempoolFeed.listener)
                           .where(MempoolFeed.id > after).order_by(MempoolFeed.id).limit(MAX_ROWS + 1)).all()
    backlog = len(rows) > MAX_ROWS
    if backlog:
        high = session.scalar(select(func.max(MempoolFeed.id)))
        marker = session.execute(select(MempoolFeed.kind, MempoolFeed.listener)
                                 .where(MempoolFeed.kind.in_((GAP, STOPPED)))
                                 .order_by(MempoolFeed.id.desc()).limit(1)).first()
    else:
        high = rows[-1].id if rows else after
        marker = next(((r.kind, r.listener) for r in reversed(rows) if r.kind in (GAP, STOPPED)), None)
    if marker is not None:
        newest = marker[1] if marker[0] == GAP else None
    else:
        newest = cursor.listener if cursor else None
    state = (cursor.listener, cursor.mempool_seq) if cursor else None

    def full(reason: str) -> Plan:
        return Plan("full", reason, high, newest, after=after, cursor=state)
    if cursor is None or cursor.listener is None or cursor.mempool_seq is None:
        return full("no listener")
    if now - cursor.synced_at >= FULL_EVERY:
        return full("periodic")
    if backlog:
        return full("backlog")
    if any(r.kind not in (ADDED, REMOVED) or r.listener != cursor.listener for r in rows):
        return full("gap")
    return Plan("feed", "feed", high, cursor.listener, cursor.mempool_seq,
                [(r.id, r.kind, r.txid, r.mempool_seq) for r in rows], after=after, cursor=state)


def changes(p: Plan) -> tuple[list[str], list[str]]:
    """(added, removed) txids of a feed plan: each txid's last notification counts, and
    ones numbered below the snapshot (already in it) are skipped."""
    last: dict[str, str] = {}
    for _id, kind, txid, seq in p.rows:
        if txid is None or (seq is not None and p.baseline is not None and seq < p.baseline):
            continue
        last.pop(txid, None)
        last[txid] = kind
    return [t for t, k in last.items() if k == ADDED], [t for t, k in last.items() if k == REMOVED]


def advance(session: Session, p: Plan, *, snapshot_sequence: int | None = None,
            snapshot_at: dt.datetime | None = None) -> None:
    """Move the cursor past what `p` covered and delete those feed rows (in the caller's
    transaction). A full plan also records its snapshot's sequence and time and the
    listener run that continues it."""
    cursor = session.get(MempoolCursor, 1)
    if cursor is None:
        cursor = MempoolCursor(id=1, feed_id=0, synced_at=snapshot_at or utcnow())
        session.add(cursor)
    if p.mode == "full":
        cursor.listener, cursor.mempool_seq = p.listener, snapshot_sequence
        cursor.synced_at = snapshot_at
        upto = p.high
    else:
        upto = p.rows[-1][0] if p.rows else cursor.feed_id
    cursor.feed_id = max(cursor.feed_id, upto)
    session.execute(delete(MempoolFeed).where(MempoolFeed.id <= cursor.feed_id))


def status(session: Session, now: dt.datetime) -> dict:
    """For monitoring: {"listening": whether the cursor is held by a listener run (feed
    passes possible), "pending": feed rows after the cursor, "snapshot_age_seconds": since
    the last full snapshot (None before the first)}. Two small reads."""
    cursor = session.get(MempoolCursor, 1)
    after = cursor.feed_id if cursor else 0
    pending = session.scalar(select(func.count()).select_from(MempoolFeed).where(MempoolFeed.id > after)) or 0
    return {"listening": bool(cursor and cursor.listener), "pending": pending,
            "snapshot_age_seconds": (now - cursor.synced_at).total_seconds() if cursor else None}


class FeedWriter:
    """Writes one listener run's notifications (`record`, `stopped`). Never raises: a
    failed write is logged and makes the next batch start with a `G` row."""

    def __init__(self, database_url: str, *, clock=utcnow):
        self.sessions = sessionmaker(bind=engine_for(database_url))
        self.listener = uuid.uuid4().hex
        self.clock = clock

    def record(self, notifications: list, gap: bool) -> bool:
        """Append `notifications` (chain.zmqwake.Notification with label A/R), after a
        `G` row when `gap`. Returns False when the write failed."""
        now = self.clock()
        rows = [dict(listener=self.listener, kind=GAP, txid=None, mempool_seq=None, received_at=now)] if gap else []
        rows += [dict(listener=self.listener, kind=n.label, txid=n.hash, mempool_seq=n.mempool_sequence,
                      received_at=now) for n in notifications if n.label in (ADDED, REMOVED)]
        return self._write(rows)

    def stopped(self) -> bool:
        """The listener stops: its notifications no longer continue any snapshot."""
        return self._write([dict(listener=self.listener, kind=STOPPED, txid=None, mempool_seq=None,
                                 received_at=self.clock())])

    def _write(self, rows: list[dict]) -> bool:
        if not rows:
            return True
        try:
            with self.sessions() as session, session.begin():
                session.execute(insert(MempoolFeed), rows)
            return True
        except Exception as exc:  # the database may be down: the next pass takes a snapshot
            log.warning("mempool feed: write failed (%s)", type(exc).__name__)
            return False
