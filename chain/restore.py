"""Restore: index an account's past, from its `birthday` (Unix time) to the present.

1. the start height is the first block whose time is at least `birthday - 2 h` (the
   window Core's rescans use), found by bisection over headers;
2. with a compact block filter index (`-blockfilterindex=1`) `scanblocks start` names
   the blocks that pay or spend one of the account's scripts (each ranged branch
   scanned over `[0, max(999, derived)]`), and only those are fetched — O(the
   account's history). Without the index (RPC -1), every block from the start height
   is fetched instead (method `scan`);
3. each block is applied for this account only (chain.follower.apply_block with an
   account filter), under the follower's leader lock, progress saved in the same
   transaction (`chain_restores.next_height`), so a crashed job resumes where it was;
4. when a payment used an index near the end of the scanned range, the scan repeats
   over a wider range; finally the blocks the follower applied meanwhile are
   re-applied for the account under the leader lock (a spend of a restored coin in a
   recent block is then seen), and the restore is `done`.

Idempotent: applying a block twice changes nothing. Raises ChainUnavailable when
bitcoind is down and RestoreBusy while another leader holds the lock (the job is
retried by the reconciler).
"""
from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select

from chain.errors import ChainError, ChainRejected
from chain.model import GAP_LIMIT, Restore, ScriptBranch
from chain.txdata import block_from_json

log = logging.getLogger("custos.chain")
RESCAN_WINDOW = 7200            # seconds before the birthday a restore starts (Core's TIMESTAMP_WINDOW)
DEFAULT_RANGE = 999             # scanblocks' default range end for ranged descriptors
SCAN_TIMEOUT = 3600.0           # seconds a scanblocks call may take on a large chain
FILTER_INDEX = "basic block filter index"


class RestoreBusy(ChainError):
    """Another follower holds the leader lock; try again later."""


def request(session, account_id: str, now: dt.datetime) -> Restore:
    """Record that `account_id` needs a restore (the caller schedules the job)."""
    row = session.get(Restore, account_id)
    if row is None:
        row = Restore(account_id=account_id, state="pending", blocks_found=0, created_at=now, updated_at=now)
        session.add(row)
        session.flush()
    return row


def progress(session, account_id: str) -> dict | None:
    """The restore's state for the account resource, or None when there is none."""
    row = session.get(Restore, account_id)
    if row is None:
        return None
    return {"state": row.state, "method": row.method, "from_height": row.start_height,
            "to_height": row.stop_height, "next_height": row.next_height, "blocks_found": row.blocks_found,
            "error": row.error}


def start_height(node, birthday: int | None) -> int:
    """First height whose block time is ≥ birthday − RESCAN_WINDOW (0 without a birthday)."""
    if not birthday:
        return 0
    cutoff = birthday - RESCAN_WINDOW
    lo, hi = 0, int(node.call("getblockcount"))
    if int(node.call("getblockheader", node.call("getblockhash", hi))["time"]) < cutoff:
        return hi + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if int(node.call("getblockheader", node.call("getblockhash", mid))["time"]) >= cutoff:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _scan_objects(branches: list[ScriptBranch], range_end: int) -> list:
    out: list = []
    for b in branches:
        if b.ranged:
            out.append({"desc": b.descriptor, "range": [0, max(range_end, b.derived_to)]})
        else:
            out.extend(line.strip() for line in b.descriptor.split("\n") if line.strip())
    return out


def _filter_index_ready(node) -> bool:
    try:
        info = node.call("getindexinfo", FILTER_INDEX)
    except ChainRejected:
        return False
    entry = info.get(FILTER_INDEX) if isinstance(info, dict) else None
    return bool(entry and entry.get("synced"))


def run(follower, account_id: str, birthday: int | None, now: dt.datetime) -> dict | None:
    """Run (or resume) the account's restore to completion. Returns its progress."""
    node = follower.node
    with follower.transaction() as session:
        row = session.get(Restore, account_id)
        if row is None or row.state == "done":
            return progress(session, account_id)
        if row.start_height is None:
            row.start_height = start_height(node, birthday)
        tip = follower.tip(session)
        row.stop_height = tip.height if tip else int(node.call("getblockcount"))
        if row.next_height is None:
            row.next_height = row.start_height
        row.state, row.updated_at = "running", now
        begin, stop = row.next_height, row.stop_height
    range_end = DEFAULT_RANGE
    for _round in range(8):
        method, heights = _relevant(follower, account_id, begin, stop, range_end)
        for height, block_hash in heights:
            _apply(follower, account_id, height, block_hash, found=method == "scanblocks")
        with follower.sessions() as session:
            branches = list(session.scalars(select(ScriptBranch).where(ScriptBranch.account_id == account_id)))
        top = max([b.highest_used for b in branches if b.ranged and b.highest_used is not None], default=-1)
        if top + GAP_LIMIT <= range_end:
            break
        range_end, begin = max(range_end * 2, top + 2 * GAP_LIMIT), row.start_height   # wider: scan again
    _catch_up(follower, account_id, stop)
    with follower.sessions() as session:
        return progress(session, account_id)


def _relevant(follower, account_id: str, begin: int, stop: int, range_end: int) -> tuple[str, list[tuple[int, str]]]:
    """(method, [(height, hash)]) of the blocks to apply: scanblocks' answer, or every
    block (hash "" = look it up when applying)."""
    node = follower.node
    if begin > stop:
        return "none", []
    with follower.sessions() as session:
        branches = list(session.scalars(select(ScriptBranch).where(ScriptBranch.account_id == account_id)))
    method = "scan"
    if _filter_index_ready(node):
        try:
            result = node.with_timeout(SCAN_TIMEOUT).call("scanblocks", "start", _scan_objects(branches, range_end),
                                                          begin, stop)
            method = "scanblocks"
        except ChainRejected as err:
            if err.code != -1:
                raise
    with follower.transaction() as session:
        row = session.get(Restore, account_id)
        row.method = method
    if method == "scan":
        return method, [(h, "") for h in range(begin, stop + 1)]
    found = []
    for block_hash in result.get("relevant_blocks", []):
        header = node.call("getblockheader", block_hash, True)
        if int(header.get("confirmations", -1)) >= 1:
            found.append((int(header["height"]), block_hash))
    return method, sorted(found)


def _apply(follower, account_id: str, height: int, block_hash: str, *, found: bool) -> None:
    node = follower.node
    block_hash = block_hash or node.call("getblockhash", height)
    block = block_from_json(follower._getblock(block_hash))
    with follower.leader() as is_leader:
        if not is_leader:
            raise RestoreBusy("the follower holds the leader lock")

        def note(session):
            row = session.get(Restore, account_id)
            row.next_height = max(row.next_height or 0, height + 1)
            row.blocks_found += 1 if found else 0
            row.updated_at = follower.clock()
        follower.apply_block(block, account_filter=account_id, extra=note)


def _catch_up(follower, account_id: str, stop: int) -> None:
    """Under the leader lock: re-apply, for this account, the blocks the follower applied
    after `stop`, then mark the restore done."""
    with follower.leader() as is_leader:
        if not is_leader:
            raise RestoreBusy("the follower holds the leader lock")
        with follower.sessions() as session:
            tip = follower.tip(session)
            top = tip.height if tip else stop
        for height in range(stop + 1, top + 1):
            block = block_from_json(follower._getblock(follower.node.call("getblockhash", height)))
            follower.apply_block(block, account_filter=account_id)
        with follower.transaction() as session:
            row = session.get(Restore, account_id)
            row.state, row.next_height, row.updated_at = "done", max(row.next_height or 0, top + 1), follower.clock()
    log.info("restore of %s done", account_id)
