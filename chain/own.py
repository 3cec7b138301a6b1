"""Index a transaction Custos itself built and just broadcast, from what the signing gate
already knows — which of the account's coins it spends (amounts proved against the
index) and its outputs — in a few set statements instead of the general applier's
lookups (chain.observe). The rows written are the ones chain.apply.Applier writes for
the same transaction seen unconfirmed, so the follower's next mempool pass finds
nothing to change (tests/api/test_own_index.py compares the two, row for row).

It declines (raises Declined) whenever the general applier would do more than record a
plain spend of one account:
- an output pays a script of another account (that account's receipt and its owner's
  `receive` push are the applier's work);
- an input is not an unspent, unconfirmed-spender-free coin of the account (a fee bump
  spends coins its predecessor already spent; the follower may have indexed it first);
- the account already has a row for the transaction (a re-broadcast; the applier
  decides whether that row moves).
The caller then runs chain.observe.observe_transaction. All three are checked by the
first statement, before anything is written. Each write checks again (its row count, or
RETURNING): on PostgreSQL the block follower may index the same transaction between the
check and the write, and a decline then comes after some rows are written, so a caller
on PostgreSQL runs this in a savepoint it rolls back on Declined (or on a deadlock with
the follower). On SQLite the caller holds the database's one write lock (the signing
gate's account lock), nothing else writes between the check and the writes, so a
decline always comes before any write and no savepoint is needed. Runs in the caller's
transaction; no bitcoind call; no listener is dispatched (the gate has set its spend's
state itself, which is all the listeners would do for a send of ours).
"""
from __future__ import annotations

import datetime as dt
from typing import Sequence

from sqlalchemy import Integer, bindparam, case, exists, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from chain import scripts as script_index
from chain import sql
from chain.model import AccountTx, Coin, MempoolTx, ScriptBranch, WatchedScript


class Declined(Exception):
    """Roll the savepoint back: the general applier indexes this transaction."""


# The statements of one recorded spend, built once (table-level: no ORM unit of work, and
# SQLAlchemy reuses their compiled form; only the parameters change per cosign).
_SCRIPTS, _COINS, _BRANCHES, _TXS = (WatchedScript.__table__, Coin.__table__, ScriptBranch.__table__,
                                     AccountTx.__table__)
_FREE_INPUTS = (tuple_(_COINS.c.txid, _COINS.c.vout).in_(bindparam("outpoints", expanding=True)),
                _COINS.c.account_id == bindparam("account"), _COINS.c.spent_by_txid.is_(None))
# every reason to decline, in one row per watched output script (one row with no script
# when none is watched): how many inputs are free coins of the account, whether the
# account has the transaction already, and the outputs' watched scripts
_CHECKS = select(select(func.count()).select_from(_COINS).where(*_FREE_INPUTS).scalar_subquery().label("free"),
                 exists().where(_TXS.c.account_id == bindparam("account"),
                                _TXS.c.txid == bindparam("spender")).label("known")).subquery("checks")
_CHECK = (select(_CHECKS.c.free, _CHECKS.c.known, _SCRIPTS.c.script, _SCRIPTS.c.account_id, _SCRIPTS.c.branch,
                 _SCRIPTS.c.index)
          .select_from(_CHECKS.outerjoin(_SCRIPTS, _SCRIPTS.c.script.in_(bindparam("scripts", expanding=True)))))
_SPEND_COINS = (update(_COINS).where(*_FREE_INPUTS)
                .values(spent_by_txid=bindparam("spender"), spent_height=None, spent_block_hash=None))
_MARK_USED = (update(_SCRIPTS).where(_SCRIPTS.c.script.in_(bindparam("scripts", expanding=True)),
                                     _SCRIPTS.c.used.is_(False)).values(used=True))
_TOP = bindparam("top", type_=Integer)
_RAISE_HIGHEST = (update(_BRANCHES)      # takes the branch row's lock (PostgreSQL) and says what to refill
                  .where(_BRANCHES.c.account_id == bindparam("account"), _BRANCHES.c.branch == bindparam("which"))
                  .values(highest_used=case((_BRANCHES.c.highest_used.is_(None), _TOP),
                                            (_BRANCHES.c.highest_used < _TOP, _TOP),
                                            else_=_BRANCHES.c.highest_used))
                  .returning(_BRANCHES.c.descriptor, _BRANCHES.c.ranged, _BRANCHES.c.derived_to,
                             _BRANCHES.c.highest_used, _BRANCHES.c.next_index))
_DERIVED_TO = (update(_BRANCHES)
               .where(_BRANCHES.c.account_id == bindparam("account"), _BRANCHES.c.branch == bindparam("which"))
               .values(derived_to=bindparam("upto", type_=Integer)))
_INSERT_TX = {name: dialect.insert(AccountTx.__table__).on_conflict_do_nothing().returning(AccountTx.id)
              for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))}


def record_spend(session: Session, account_id: str, txid: str, inputs: Sequence[tuple[str, int, int]],
                 outputs: Sequence[tuple[int, bytes, int]], now: dt.datetime) -> None:
    """Record `txid` (unconfirmed) spending `inputs` [(txid, vout, amount_sat)], all
    coins of `account_id`, and creating `outputs` [(vout, scriptPubKey, value_sat)].
    Raises Declined (see the module docstring): before any write, except on PostgreSQL
    when the follower indexes it concurrently (the caller's savepoint is rolled back).
    Not idempotent by itself: a second call for the same transaction declines."""
    if not inputs:
        raise Declined()
    conn = session.connection()
    outpoints = [(t, v) for t, v, _ in inputs]
    rows = conn.execute(_CHECK, {"outpoints": outpoints, "account": account_id, "spender": txid,
                                 "scripts": sorted({script for _, script, _ in outputs})}).all()
    free, known = rows[0][0], rows[0][1]
    watched = {bytes(spk): (acct, branch, index) for _, _, spk, acct, branch, index in rows if spk is not None}
    if known or free != len(inputs) or any(hit[0] != account_id for hit in watched.values()):
        raise Declined()
    spent = conn.execute(_SPEND_COINS, {"outpoints": outpoints, "account": account_id, "spender": txid})
    if spent.rowcount != len(inputs):       # PostgreSQL: the follower marked one meanwhile
        raise Declined()
    for t, v, _ in inputs:          # a Coin the session loaded earlier is read afresh when used
        _expire(session, Coin, (t, v))
    sent = sum(amount for _, _, amount in inputs)
    ours = [(vout, script, value) for vout, script, value in outputs if script in watched]
    sql.insert_ignore(session, Coin, [
        dict(txid=txid, vout=vout, account_id=account_id, amount_sat=value, script=script,
             branch=watched[script][1], index=watched[script][2], coinbase=False, own_change=True,
             block_height=None, block_hash=None, spent_by_txid=None, spent_height=None,
             spent_block_hash=None, reserved_by=None, reserved_until=None, first_seen=now)
        for vout, script, value in ours])
    received = sum(value for _, _, value in ours)
    row = conn.execute(_INSERT_TX[conn.dialect.name], dict(       # RETURNING: was the row new?
        account_id=account_id, txid=txid, state="mempool", first_seen=now, updated_at=now, replaced_by=None,
        block_height=None, block_hash=None, block_pos=None, block_time=None, received_sat=received,
        sent_sat=sent, net_sat=received - sent, fee_sat=sent - sum(value for _, _, value in outputs)))
    if row.first() is None:        # PostgreSQL: the follower recorded it meanwhile
        raise Declined()
    if ours:
        _mark_used(session, conn, account_id, ours, watched)
    sql.insert_ignore(session, MempoolTx, [dict(txid=txid, relevant=True, seen_at=now)])


def _mark_used(session: Session, conn, account_id: str, ours, watched) -> None:
    """chain.scripts.mark_used for one account's outputs: the scripts marked used, each
    branch's highest_used raised in the statement that locks its row, and the refill
    (GAP_LIMIT unused scripts ahead) derived and written only when it moved."""
    conn.execute(_MARK_USED, {"scripts": sorted({script for _, script, _ in ours})})
    tops: dict[int, int] = {}
    for _, script, _ in ours:
        _, branch, index = watched[script]
        tops[branch] = max(tops.get(branch, -1), index)
    for branch in sorted(tops):     # one lock order for every caller
        _expire(session, ScriptBranch, (account_id, branch))
        descriptor, ranged, derived_to, highest, next_index = conn.execute(
            _RAISE_HIGHEST, {"account": account_id, "which": branch, "top": tops[branch]}).one()
        upto = script_index.refill_upto(highest, next_index)
        if not ranged or upto <= derived_to:
            continue
        sql.insert_scripts(session, script_index.derivations(account_id, branch, descriptor, derived_to, upto))
        conn.execute(_DERIVED_TO, {"account": account_id, "which": branch, "upto": upto})


def _expire(session: Session, model, key) -> None:
    loaded = session.identity_map.get(identity_key(model, key))
    if loaded is not None:
        session.expire(loaded)
