"""The mempool part of a follower pass, in one of two modes (chain.feed.plan decides).

Full: `snapshot` is `getrawmempool(false, true)` = {"txids", "mempool_sequence"} taken
BEFORE the pass followed blocks to the tip. So a transaction that is missing from it
and is still `mempool` in the index was neither mined (every block up to the tip is
applied) nor re-added after a reorg later than the snapshot (those rows were updated
after `snapshot_at` and are left for the next pass): it left the mempool for good, and
is dropped as conflicted (replacements seen earlier were already marked replaced).
Unchanged `mempool_sequence` and tip → no fetch, only the (indexed) look for
unconfirmed rows that left. Costs O(mempool): the whole txid list and `chain_mempool`.

Feed: the ZMQ notifications recorded since the cursor (chain.feed) say which
transactions were added and which left for a non-block reason; blocks remove theirs as
they are applied (chain.follower). Costs O(changes): no `getrawmempool` at all.

Either way, new txids (not in `chain_mempool`) are fetched with batched
`getrawtransaction` and applied parents first, `BATCH` per database transaction, before
the ones that left are dropped (so a replacement marks what it replaced first).
"""
from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select

from chain import feed
from chain.apply import Applier
from chain.errors import RPCError
from chain.events import dispatch
from chain.model import AccountTx, MempoolTx
from chain.sql import chunks, delete_in, insert_ignore, member
from chain.txdata import ChainTx, tx_from_json

log = logging.getLogger("custos.chain")
BATCH = 500


def sync(follower, plan: feed.Plan, snapshot: dict | list | None, snapshot_at: dt.datetime, report) -> None:
    """Apply the mempool to the index as `plan` says (see the module docstring), then
    move the feed cursor. Raises ChainUnavailable when bitcoind cannot be reached (the
    cursor stays: the next pass does the same work again, idempotently)."""
    report.mempool_mode = plan.mode
    sequence = None
    if plan.mode == "feed":
        _follow_feed(follower, plan, report)
    else:
        if plan.reason in ("gap", "backlog", "reorg"):   # frequent gaps: raise -zmqpubsequencehwm
            log.info("chain follower: mempool snapshot (%s)", plan.reason)
        sequence = snapshot.get("mempool_sequence") if isinstance(snapshot, dict) else None
        _full(follower, snapshot, sequence, snapshot_at, report)
    if plan.moves_cursor(sequence):
        with follower.transaction() as session:
            feed.advance(session, plan, snapshot_sequence=sequence, snapshot_at=snapshot_at)


def _full(follower, snapshot, sequence: int | None, snapshot_at: dt.datetime, report) -> None:
    txids = list(snapshot["txids"]) if isinstance(snapshot, dict) else list(snapshot)
    key = (sequence, report.tip_height)
    current = set(txids)
    if sequence is not None and key == follower.last_mempool_sequence and not report.blocks_applied:
        report.mempool_gone += _drop_gone(follower, current, snapshot_at)   # e.g. left behind by a reorg
        return
    with follower.sessions() as session:
        known = set(session.scalars(select(MempoolTx.txid)))
    new = [t for t in txids if t not in known]
    left = known - current
    _fetch_and_apply(follower, new, report)
    _forget(follower, list(left))
    report.mempool_gone += _drop_gone(follower, current, snapshot_at)
    follower.last_mempool_sequence = key


def _follow_feed(follower, plan: feed.Plan, report) -> None:
    added, removed = feed.changes(plan)
    known: set[str] = set()
    if added:
        with follower.sessions() as session:
            for cond in member(session, MempoolTx.txid, added):
                known.update(session.scalars(select(MempoolTx.txid).where(cond)))
    _fetch_and_apply(follower, [t for t in added if t not in known], report)
    if removed:
        _forget(follower, removed)
        with follower.sessions() as session:
            unconfirmed = set()
            for cond in member(session, AccountTx.txid, removed):
                unconfirmed.update(session.scalars(select(AccountTx.txid).where(cond, AccountTx.state == "mempool")))
        report.mempool_gone += _drop(follower, _really_gone(follower.node, sorted(unconfirmed)))


def _really_gone(node, txids: list[str]) -> list[str]:
    """The ones among `txids` that the node no longer has in its mempool. A notification
    is not authenticated, so an account's own transaction is dropped only on the node's
    word (`getmempoolentry`: -5 when it is not there)."""
    if not txids:
        return []
    answers = node.batch([("getmempoolentry", [t]) for t in txids])
    return [t for t, a in zip(txids, answers) if isinstance(a, RPCError) and a.code == -5]


def _fetch_and_apply(follower, txids: list[str], report) -> None:
    for part in chunks(txids, BATCH):
        txs = _fetch(follower.node, part)
        _apply(follower, _parents_first(txs), part)
        report.mempool_new += len(txs)


def _forget(follower, txids: list[str]) -> None:
    """Delete `txids` from `chain_mempool` (they left the mempool)."""
    if txids:
        with follower.transaction() as session:
            delete_in(session, MempoolTx, MempoolTx.txid, txids)


def _fetch(node, txids: list[str]) -> list[ChainTx]:
    """Decoded transactions for `txids`; ones that left the mempool meanwhile are skipped,
    and so are ones already in a block (a node with -txindex answers for those too:
    the block is applied by the block part of the pass, not as unconfirmed)."""
    answers = node.batch([("getrawtransaction", [t, 1]) for t in txids])
    out = []
    for txid, answer in zip(txids, answers):
        if isinstance(answer, RPCError) or answer.get("blockhash"):
            continue
        out.append(tx_from_json(answer))
    return out


def _parents_first(txs: list[ChainTx]) -> list[ChainTx]:
    """Order so that a transaction comes after any parent in the same list."""
    by_id = {t.txid: t for t in txs}
    done: set[str] = set()
    order: list[ChainTx] = []

    def visit(t: ChainTx, depth: int = 0) -> None:
        if t.txid in done:
            return
        done.add(t.txid)
        if depth < 200:
            for i in t.inputs:
                parent = by_id.get(i.txid)
                if parent is not None:
                    visit(parent, depth + 1)
        order.append(t)
    for t in txs:
        visit(t)
    return order


def _apply(follower, txs: list[ChainTx], fetched: list[str]) -> None:
    now = follower.clock()
    with follower.transaction() as session:
        applier = Applier(session, now, classifiers=follower.classifiers)
        applier.apply(txs, None)
        relevant = {e.txid for e in applier.events}
        got = {t.txid for t in txs}
        rows = [dict(txid=t, relevant=t in relevant, seen_at=now) for t in fetched if t in got]
        insert_ignore(session, MempoolTx, rows)
        tip = follower.tip(session)
        dispatch(follower.listeners, session, applier.events, tip.height if tip else 0, now)


def _drop_gone(follower, current: set[str], snapshot_at: dt.datetime) -> int:
    """Drop unconfirmed account transactions that are not in the snapshot and were not
    touched since it was taken. Returns how many transactions were dropped."""
    with follower.sessions() as session:
        candidates = set(session.scalars(select(AccountTx.txid).where(
            AccountTx.state == "mempool", AccountTx.updated_at < snapshot_at)))
    return _drop(follower, sorted(candidates - current))


def _drop(follower, gone: list[str]) -> int:
    """Mark the unconfirmed account transactions `gone` conflicted (they left the mempool
    for good), in one transaction. Returns how many there were."""
    if not gone:
        return 0
    now = follower.clock()
    with follower.transaction() as session:
        applier = Applier(session, now, classifiers=follower.classifiers)
        for txid in gone:
            applier.drop(txid, replaced_by=None, state="conflicted")
        tip = follower.tip(session)
        dispatch(follower.listeners, session, applier.events, tip.height if tip else 0, now)
    log.info("chain follower: %d unconfirmed transaction(s) left the mempool", len(gone))
    return len(gone)
