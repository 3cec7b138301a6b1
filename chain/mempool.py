"""The mempool diff of a follower pass.

`snapshot` is `getrawmempool(false, true)` = {"txids", "mempool_sequence"} taken BEFORE
the pass followed blocks to the tip. So a transaction that is missing from it and is
still `mempool` in the index was neither mined (every block up to the tip is applied)
nor re-added after a reorg later than the snapshot (those rows were updated after
`snapshot_at` and are left for the next pass): it left the mempool for good, and is
dropped as conflicted (replacements seen earlier were already marked replaced).

New txids (not in `chain_mempool`) are fetched with batched `getrawtransaction` and
applied parents first, `BATCH` per database transaction. Unchanged
`mempool_sequence` and tip → no fetch, only the (indexed) look for unconfirmed rows
that left.
"""
from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import delete, select

from chain.apply import Applier
from chain.errors import RPCError
from chain.events import dispatch
from chain.model import AccountTx, MempoolTx
from chain.sql import insert_ignore
from chain.txdata import ChainTx, tx_from_json

log = logging.getLogger("custos.chain")
BATCH = 500


def sync(follower, snapshot: dict, snapshot_at: dt.datetime, report) -> None:
    txids = list(snapshot["txids"]) if isinstance(snapshot, dict) else list(snapshot)
    sequence = snapshot.get("mempool_sequence") if isinstance(snapshot, dict) else None
    key = (sequence, report.tip_height)
    current = set(txids)
    if sequence is not None and key == follower.last_mempool_sequence and not report.blocks_applied:
        report.mempool_gone += _drop_gone(follower, current, snapshot_at)   # e.g. left behind by a reorg
        return
    with follower.sessions() as session:
        known = set(session.scalars(select(MempoolTx.txid)))
    new = [t for t in txids if t not in known]
    left = known - current
    for part in _parts(new, BATCH):
        txs = _fetch(follower.node, part)
        _apply(follower, _parents_first(txs), part)
        report.mempool_new += len(txs)
    if left:
        with follower.transaction() as session:
            for i in range(0, len(left), BATCH):
                chunk = list(left)[i:i + BATCH]
                session.execute(delete(MempoolTx).where(MempoolTx.txid.in_(chunk)))
    report.mempool_gone += _drop_gone(follower, current, snapshot_at)
    follower.last_mempool_sequence = key


def _parts(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _fetch(node, txids: list[str]) -> list[ChainTx]:
    """Decoded transactions for `txids`; ones that left the mempool meanwhile are skipped."""
    answers = node.batch([("getrawtransaction", [t, 1]) for t in txids])
    out = []
    for txid, answer in zip(txids, answers):
        if isinstance(answer, RPCError):
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
    gone = sorted(candidates - current)
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
