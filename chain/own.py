"""Index a transaction Custos itself built and just broadcast, from what the signing gate
already knows — which of the account's coins it spends (amounts proved against the
index) and its outputs — in a few set statements instead of the general applier's
lookups (chain.observe). The rows written are the ones chain.apply.Applier writes for
the same transaction seen unconfirmed, so the follower's next mempool pass finds
nothing to change (tests/api/test_own_index.py compares the two, row for row).

It declines (raises Declined; the caller rolls back its savepoint, since some rows
may be written by then) whenever the general applier would do
more than record a plain spend of one account:
- an output pays a script of another account (that account's receipt and its owner's
  `receive` push are the applier's work);
- an input is not an unspent, unconfirmed-spender-free coin of the account (a fee bump
  spends coins its predecessor already spent; the follower may have indexed it first);
- the account already has a row for the transaction (a re-broadcast; the applier
  decides whether that row moves).
The caller then runs chain.observe.observe_transaction. Runs in the caller's
transaction, which must be a savepoint the caller rolls back on Declined; no bitcoind call; no listener is dispatched (the gate has set its spend's
state itself, which is all the listeners would do for a send of ours).
"""
from __future__ import annotations

import datetime as dt
from typing import Sequence

from sqlalchemy import and_, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from chain import scripts as script_index
from chain import sql
from chain.model import AccountTx, Coin, MempoolTx


class Declined(Exception):
    """Roll the savepoint back: the general applier indexes this transaction."""


def record_spend(session: Session, account_id: str, txid: str, inputs: Sequence[tuple[str, int, int]],
                 outputs: Sequence[tuple[int, bytes, int]], now: dt.datetime) -> None:
    """Record `txid` (unconfirmed) spending `inputs` [(txid, vout, amount_sat)], all
    coins of `account_id`, and creating `outputs` [(vout, scriptPubKey, value_sat)].
    Raises Declined (see the module docstring): the caller rolls its savepoint back.
    Not idempotent by itself: a second call for the same transaction declines."""
    if not inputs:
        raise Declined()
    watched = sql.match_scripts(session, [script for _, script, _ in outputs])
    if any(hit[0] != account_id for hit in watched.values()):
        raise Declined()
    conn = session.connection()
    spent = conn.execute(
        update(Coin.__table__)
        .where(or_(*[and_(Coin.txid == t, Coin.vout == v) for t, v, _ in inputs]),
               Coin.account_id == account_id, Coin.spent_by_txid.is_(None))
        .values(spent_by_txid=txid, spent_height=None, spent_block_hash=None))
    if spent.rowcount != len(inputs):
        raise Declined()
    for t, v, _ in inputs:          # a Coin the session loaded earlier is read afresh when used
        loaded = session.identity_map.get(identity_key(Coin, (t, v)))
        if loaded is not None:
            session.expire(loaded)
    sent = sum(amount for _, _, amount in inputs)
    ours = [(vout, script, value) for vout, script, value in outputs if script in watched]
    sql.insert_ignore(session, Coin, [
        dict(txid=txid, vout=vout, account_id=account_id, amount_sat=value, script=script,
             branch=watched[script][1], index=watched[script][2], coinbase=False, own_change=True,
             block_height=None, block_hash=None, spent_by_txid=None, spent_height=None,
             spent_block_hash=None, reserved_by=None, reserved_until=None, first_seen=now)
        for vout, script, value in ours])
    received = sum(value for _, _, value in ours)
    dialect = postgresql if sql.is_postgres(session) else sqlite      # RETURNING: was the row new?
    row = conn.execute(dialect.insert(AccountTx.__table__).on_conflict_do_nothing().returning(AccountTx.id), dict(
        account_id=account_id, txid=txid, state="mempool", first_seen=now, updated_at=now, replaced_by=None,
        block_height=None, block_hash=None, block_pos=None, block_time=None, received_sat=received,
        sent_sat=sent, net_sat=received - sent, fee_sat=sent - sum(value for _, _, value in outputs)))
    if row.first() is None:        # the account has a row for it already
        raise Declined()
    used: dict[tuple[str, int], int] = {}
    for _, script, _ in ours:
        _, branch, index = watched[script]
        used[(account_id, branch)] = max(used.get((account_id, branch), -1), index)
    script_index.mark_used(session, used, [script for _, script, _ in ours])
    sql.insert_ignore(session, MempoolTx, [dict(txid=txid, relevant=True, seen_at=now)])
