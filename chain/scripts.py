"""Watched scripts: register an account's branches, keep GAP_LIMIT unused scripts ahead
of the highest used one, hand out change indexes. No bitcoind call anywhere here.

Every function runs in the caller's transaction. Inserting a script that is already
watched (same account, branch and index) is a no-op, so a refill racing with
`take_index` or a retried transaction converges.
"""
from __future__ import annotations

import datetime as dt

from embit.script import Script
from sqlalchemy import select
from sqlalchemy.orm import Session

from chain import sql
from chain.derive import script_deriver
from chain.errors import ChainError
from chain.model import GAP_LIMIT, ScriptBranch


class UnknownBranch(ChainError):
    """The account has no such branch in the index."""


def parse_address_list(descriptor: str) -> list[bytes]:
    """Scripts of a non-ranged branch: `addr(ADDRESS)#checksum` lines, or one
    non-ranged descriptor. Raises ValueError when a line is neither."""
    out = []
    for line in descriptor.split("\n"):
        body = line.strip().split("#")[0]
        if body.startswith("addr(") and body.endswith(")"):
            out.append(Script.from_address(body[5:-1]).data)
        else:
            out.append(script_deriver(body)(0))
    return out


def register_account(session: Session, account_id: str, branches: list[tuple[int, str]],
                     now: dt.datetime | None = None) -> int:
    """Write the account's branches and their first scripts: GAP_LIMIT per ranged
    branch (indexes 0..GAP_LIMIT-1), every script of a non-ranged one. Returns the
    number of scripts written. Idempotent. Raises ValueError for a bad descriptor."""
    written = 0
    for branch, descriptor in branches:
        ranged = "*" in descriptor
        row = session.get(ScriptBranch, (account_id, branch))
        if row is None:
            row = ScriptBranch(account_id=account_id, branch=branch, descriptor=descriptor, ranged=ranged,
                               derived_to=-1, highest_used=None, next_index=0)
            session.add(row)
            session.flush()
        if ranged:
            written += _derive_to(session, row, GAP_LIMIT - 1)
        else:
            spks = parse_address_list(descriptor)
            written += sql.insert_scripts(session, [dict(script=s, account_id=account_id, branch=branch, index=i,
                                                         used=False) for i, s in enumerate(spks)])
            row.derived_to = len(spks) - 1
    return written


def _derive_to(session: Session, row: ScriptBranch, upto: int) -> int:
    """Derive and watch scripts (row.derived_to, upto]; updates row.derived_to."""
    if not row.ranged or upto <= row.derived_to:
        return 0
    derive = script_deriver(row.descriptor)
    rows = [dict(script=derive(i), account_id=row.account_id, branch=row.branch, index=i, used=False)
            for i in range(row.derived_to + 1, upto + 1)]
    sql.insert_scripts(session, rows)
    row.derived_to = upto
    return len(rows)


def mark_used(session: Session, used: dict[tuple[str, int], int], scripts: list[bytes]) -> int:
    """A block or mempool tx paid `scripts`; `used` maps (account, branch) → the highest
    index paid. Marks the scripts used, moves highest_used, derives the refill so every
    ranged branch keeps GAP_LIMIT unused scripts ahead. Returns scripts derived.
    Locks the branch rows (sorted, so concurrent callers never deadlock)."""
    if scripts:
        sql.mark_scripts_used(session, scripts)
    derived = 0
    for (account_id, branch) in sorted(used):
        row = session.scalar(select(ScriptBranch).where(ScriptBranch.account_id == account_id,
                                                         ScriptBranch.branch == branch).with_for_update())
        if row is None:
            continue
        top = used[(account_id, branch)]
        if row.highest_used is None or top > row.highest_used:
            row.highest_used = top
        derived += _derive_to(session, row, max(row.highest_used, row.next_index - 1) + GAP_LIMIT)
    return derived


def take_index(session: Session, account_id: str, branch: int = 1) -> tuple[int, bytes]:
    """The next index of `branch` for a new output (change), and its script. The index
    is derived and watched before it is returned, so a payment to it is seen. Locks
    the branch row until the caller's transaction ends. Raises UnknownBranch."""
    row = session.scalar(select(ScriptBranch).where(ScriptBranch.account_id == account_id,
                                                     ScriptBranch.branch == branch).with_for_update())
    if row is None or not row.ranged:
        raise UnknownBranch(f"account has no ranged branch {branch}")
    index = row.next_index
    row.next_index = index + 1
    _derive_to(session, row, max(index, row.highest_used if row.highest_used is not None else -1) + GAP_LIMIT)
    return index, script_deriver(row.descriptor)(index)


def highest_used(session: Session, account_id: str, branch: int) -> int | None:
    """Highest index of `branch` that ever received a payment (None: none yet)."""
    return session.scalar(select(ScriptBranch.highest_used).where(ScriptBranch.account_id == account_id,
                                                                  ScriptBranch.branch == branch))

