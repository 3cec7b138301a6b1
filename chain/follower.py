"""The block follower: one leader applies the best chain and the mempool to the index.

A pass (`Follower.run_once`):
1. leader lock — a PostgreSQL session advisory lock (a second follower waits up to
   `lock_wait` seconds, then gives up: "busy"); on SQLite every block transaction
   starts with a write, so SQLite's write lock serializes followers;
2. `getrawmempool(false, true)` — the snapshot the mempool diff will use (full mode);
3. `getbestblockhash`; equal to the stored tip → nothing to do for blocks (an idle
   chain costs these two calls, whatever the number of accounts). Otherwise walk back
   from the stored tip with `getblockheader` until a block on the best chain (undoing
   each orphaned block in its own transaction), then apply blocks forward with
   `getblock <hash> 3` (2 when the node has no verbosity 3), each block in ONE database
   transaction that first checks the stored tip is the block's parent (fencing: a
   block is never applied twice, a crash leaves whole blocks only);
4. the mempool (chain.mempool): from the ZMQ feed when it continues the last snapshot
   (chain.feed), else from the step-2 snapshot. Step 2 is skipped in feed mode; a pass
   that undid a block takes a snapshot after all and follows blocks once more.

Blocks are fetched outside database transactions; nothing in a transaction waits on
bitcoind. Raises ChainUnavailable when bitcoind cannot be reached (the next pass
resumes from the stored tip).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from chain import feed
from chain import mempool as mempool_sync
from chain.apply import Applier
from chain.errors import ChainRejected
from chain.events import Classifier, Listener, dispatch
from chain.model import ChainBlock, MempoolTx
from chain.sql import delete_in
from chain.txdata import BlockData, block_from_json
from store.base import utcnow
from store.session import engine_for

log = logging.getLogger("custos.chain")
LEADER_LOCK_KEY = 0x637573746F73  # "custos": the PostgreSQL advisory lock of the follower
MAX_REORG_DEPTH = 1_000            # refuse to walk back further (operator action needed)
MAX_BLOCKS_PER_PASS = 2_000        # a pass returns after this many blocks (the next one continues)
WOKEN_LOCK_WAIT = 0.25             # seconds a woken pass waits for another leader (Follower.run_woken)


@dataclass
class PassReport:
    busy: bool = False
    blocks_applied: int = 0
    blocks_undone: int = 0
    tip_height: int | None = None
    mempool_mode: str | None = None     # "full" (getrawmempool snapshot) or "feed" (ZMQ notifications)
    mempool_new: int = 0
    mempool_gone: int = 0
    rows_written: int = 0
    seconds: float = 0.0
    block_seconds: list[float] = field(default_factory=list)


class TipMoved(Exception):
    """The stored tip is not the parent of the block being applied (another follower
    or a reorg in between): start the pass over."""


class Follower:
    def __init__(self, node, database_url: str, *, listeners: tuple[Listener, ...] = (),
                 classifiers: tuple[Classifier, ...] = (), start_height: int | None = None,
                 clock: Callable[[], dt.datetime] = utcnow, lock_wait: float = 10.0,
                 on_block_written: Callable[[BlockData], None] | None = None):
        """`node`: chain.rpc.BitcoinRPC. `start_height`: where an empty index starts
        (default: the node's tip). `on_block_written`: test hook, called inside the
        block's transaction just before commit."""
        self.node = node
        self.engine = engine_for(database_url)
        self.sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        self.listeners = tuple(listeners)
        self.classifiers = tuple(classifiers)
        self.start_height = start_height
        self.clock = clock
        self.lock_wait = lock_wait
        self.on_block_written = on_block_written
        self.verbosity: int | None = None
        self.last_mempool_sequence: int | None = None

    # ---- sessions and the leader lock ------------------------------------------------
    @contextlib.contextmanager
    def transaction(self):
        """A session in one write transaction (SQLite: the write lock is taken first)."""
        with self.sessions() as session, session.begin():
            if self.engine.dialect.name == "sqlite":
                session.execute(text("UPDATE chain_blocks SET height = height WHERE 1 = 0"))
            yield session

    @contextlib.contextmanager
    def leader(self, lock_wait: float | None = None):
        """Yields True while this process is the only follower (PostgreSQL advisory
        lock on a dedicated connection, released on exit or when the connection dies);
        False after `lock_wait` seconds (default: the follower's) of another leader; 0:
        one try. SQLite: always True."""
        if self.engine.dialect.name != "postgresql":
            yield True
            return
        conn = self.engine.connect()
        try:
            deadline = time.monotonic() + (self.lock_wait if lock_wait is None else lock_wait)
            while True:
                got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK_KEY}).scalar()
                conn.commit()
                if got or time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
            if not got:
                yield False
                return
            try:
                yield True
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LEADER_LOCK_KEY})
                conn.commit()
        finally:
            conn.close()

    # ---- a pass -----------------------------------------------------------------------
    def run_once(self, *, mempool: bool = True, lock_wait: float | None = None) -> PassReport:
        """One pass (see the module docstring). Returns what it did (`busy`: another
        leader held the lock for `lock_wait` seconds, default the follower's)."""
        started = time.perf_counter()
        report = PassReport()
        with self.leader(lock_wait) as is_leader:
            if not is_leader:
                report.busy = True
                return report
            plan, snapshot, snapshot_at = None, None, self.clock()
            if mempool:
                with self.sessions() as session:
                    plan = feed.plan(session, snapshot_at)
                if plan.mode == "full":
                    snapshot = self.node.call("getrawmempool", False, True)
            self.follow_blocks(report)
            if plan is not None and plan.mode == "feed" and report.blocks_undone:
                # an orphaned block's transaction that did not come back leaves no notification
                plan, snapshot_at = plan.as_full("reorg"), self.clock()
                snapshot = self.node.call("getrawmempool", False, True)
                self.follow_blocks(report)
            if plan is not None:
                mempool_sync.sync(self, plan, snapshot, snapshot_at, report)
        report.seconds = time.perf_counter() - started
        return report

    def run_woken(self, *, lock_wait: float = WOKEN_LOCK_WAIT, max_passes: int = 10) -> list[PassReport]:
        """A pass on a wake-up: it waits at most `lock_wait` seconds for another leader
        (then returns [busy report]: the running leader covers it, see below). A pass that
        took longer than `lock_wait` is followed by another one, up to `max_passes`: the
        wake-ups that arrived meanwhile found the lock held and returned, and what they
        announced (notifications, blocks) is what the trailing pass picks up. A quick
        pass needs none: a wake-up arriving during it gets the lock when it ends."""
        reports = [self.run_once(lock_wait=lock_wait)]
        while not reports[-1].busy and reports[-1].seconds > lock_wait and len(reports) < max_passes:
            reports.append(self.run_once(lock_wait=0.0))
        return reports

    def tip(self, session: Session) -> ChainBlock | None:
        return session.scalar(select(ChainBlock).order_by(ChainBlock.height.desc()).limit(1))

    def follow_blocks(self, report: PassReport) -> None:
        for _attempt in range(10):
            try:
                self._follow(report)
                return
            except TipMoved:
                continue
        log.warning("chain follower: the tip kept moving; giving up this pass")

    def _follow(self, report: PassReport) -> None:
        best = self.node.call("getbestblockhash")
        with self.sessions() as session:
            tip = self.tip(session)
            tip = (tip.height, tip.hash) if tip else None
        if tip and tip[1] == best:
            report.tip_height = tip[0]
            return
        next_hash = self._fork_point(tip, report)
        applied = 0
        while next_hash and applied < MAX_BLOCKS_PER_PASS:
            t0 = time.perf_counter()
            raw = self._getblock(next_hash)
            block = block_from_json(raw)
            report.rows_written += self.apply_block(block)
            report.blocks_applied += 1
            report.tip_height = block.height
            report.block_seconds.append(time.perf_counter() - t0)
            applied += 1
            next_hash = raw.get("nextblockhash")

    def _fork_point(self, tip: tuple[int, str] | None, report: PassReport) -> str | None:
        """Undo stored blocks that left the best chain; return the hash of the first
        block to apply next (None: nothing)."""
        if tip is None:
            height = self.start_height if self.start_height is not None else self.node.call("getblockcount")
            return self.node.call("getblockhash", height)
        depth, lowest = 0, tip[0]
        while tip is not None:
            header = self._header(tip[1])
            if header is not None and int(header.get("confirmations", -1)) >= 1:
                return header.get("nextblockhash")
            if depth >= MAX_REORG_DEPTH:
                raise RuntimeError(f"reorg deeper than {MAX_REORG_DEPTH} blocks: operator action needed")
            self.undo_block(tip[0], tip[1])
            lowest = tip[0]
            report.blocks_undone += 1
            depth += 1
            with self.sessions() as session:
                row = self.tip(session)
                tip = (row.height, row.hash) if row else None
        # every stored block was orphaned: start again at the lowest one's height
        return self.node.call("getblockhash", min(lowest, self.node.call("getblockcount")))

    def _header(self, block_hash: str) -> dict | None:
        try:
            return self.node.call("getblockheader", block_hash, True)
        except ChainRejected as err:
            if err.code == -5:   # unknown block
                return None
            raise

    def _getblock(self, block_hash: str) -> dict:
        if self.verbosity is None:
            try:
                raw = self.node.call("getblock", block_hash, 3)
                self.verbosity = 3
                return raw
            except ChainRejected as err:
                if err.code not in (-8, -1, -3):
                    raise
                self.verbosity = 2
        return self.node.call("getblock", block_hash, self.verbosity)

    # ---- one block --------------------------------------------------------------------
    def apply_block(self, block: BlockData, *, account_filter: str | None = None,
                    extra: Callable[[Session], None] | None = None) -> int:
        """Apply `block` in one transaction. The follower's form (no filter) checks
        that the stored tip is its parent (TipMoved otherwise) and records the block;
        a restore's form (`account_filter`) only indexes that account. Returns rows
        written (coins created + spent + account transactions). `extra(session)` runs
        in the same transaction (a restore's progress)."""
        now = self.clock()
        with self.transaction() as session:
            applier = Applier(session, now, classifiers=self.classifiers, account_filter=account_filter)
            if account_filter is None:
                tip = self.tip(session)
                if tip is not None and tip.hash != block.prev_hash:
                    raise TipMoved()
                if tip is None and session.get(ChainBlock, block.height) is not None:
                    raise TipMoved()
            stats = applier.apply(block.txs, block)
            tip_height = block.height
            if account_filter is None:
                session.add(ChainBlock(height=block.height, hash=block.hash, prev_hash=block.prev_hash,
                                       time=block.time, applied_at=now))
                delete_in(session, MempoolTx, MempoolTx.txid, [t.txid for t in block.txs])   # mined: no notification says so
                session.flush()
                applier.settle_depth(block.height)
            else:
                top = self.tip(session)
                tip_height = top.height if top else block.height
                applier.settle_depth(tip_height)
            if account_filter is None:  # a restore indexes history: nothing to notify
                dispatch(self.listeners, session, applier.events, tip_height, now, tip_moved=True)
            if extra is not None:
                extra(session)
            if self.on_block_written is not None:
                self.on_block_written(block)
        return stats.coins_created + stats.coins_spent + stats.txs

    def undo_block(self, height: int, block_hash: str) -> None:
        now = self.clock()
        with self.transaction() as session:
            tip = self.tip(session)
            if tip is None or tip.hash != block_hash:
                raise TipMoved()
            applier = Applier(session, now, classifiers=self.classifiers)
            applier.undo_block(block_hash, height)
            dispatch(self.listeners, session, applier.events, height - 1, now, tip_moved=True)
        log.info("chain follower: undid block %s at height %d", block_hash, height)
