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
    return sql.insert_scripts(session, _derivations(row, upto))


def mark_used(session: Session, used: dict[tuple[str, int], int], scripts: list[bytes]) -> int:
    """A block or mempool tx paid `scripts`; `used` maps (account, branch) → the highest
    index paid. Marks the scripts used, moves highest_used, derives the refill so every
    ranged branch keeps GAP_LIMIT unused scripts ahead. Returns scripts derived.
    Set queries: the branch rows are locked in one statement (sorted, so concurrent
    callers never deadlock) and the refill is one multi-row insert."""
    if scripts:
        sql.mark_scripts_used(session, scripts)
    if not used:
        return 0
    rows = sql.select_in(session, ScriptBranch, ScriptBranch.account_id, sorted({a for a, _ in used}),
                         for_update=True, order_by=(ScriptBranch.account_id, ScriptBranch.branch))
    new_rows: list[dict] = []
    for row in rows:
        top = used.get((row.account_id, row.branch))
        if top is None:
            continue
        if row.highest_used is None or top > row.highest_used:
            row.highest_used = top
        new_rows.extend(_derivations(row, refill_upto(row.highest_used, row.next_index)))
    sql.insert_scripts(session, new_rows)
    return len(new_rows)


def refill_upto(highest_used: int, next_index: int) -> int:
    """The index a ranged branch must be derived to: GAP_LIMIT past the higher of its
    highest used index and the last one handed out."""
    return max(highest_used, next_index - 1) + GAP_LIMIT


def _derivations(row: ScriptBranch, upto: int) -> list[dict]:
    """Rows for scripts (row.derived_to, upto] (not written); moves row.derived_to."""
    if not row.ranged or upto <= row.derived_to:
        return []
    out = derivations(row.account_id, row.branch, row.descriptor, row.derived_to, upto)
    row.derived_to = upto
    return out


def derivations(account_id: str, branch: int, descriptor: str, derived_to: int, upto: int) -> list[dict]:
    """Rows (not written) for the scripts of a ranged branch at indexes (derived_to, upto]."""
    derive = script_deriver(descriptor)
    return [dict(script=derive(i), account_id=account_id, branch=branch, index=i, used=False)
            for i in range(derived_to + 1, upto + 1)]


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

