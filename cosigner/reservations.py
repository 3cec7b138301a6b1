"""Which of an account's coins a spend may use, and which spend holds them.

The coins are the chain index's (`chain.model.Coin`, written by the block follower,
read through `chain.coins`); this module writes only their reservation columns: `reserved_by` (spend id) and
`reserved_until`. A coin is free when it is unspent and `reserved_by IS NULL OR
reserved_until <= now`. Every function runs in the caller's transaction, so a
reservation is made or freed atomically with the spend row's change.

Concurrency: two builds never hold the same coin. On PostgreSQL the chosen coins are
locked `FOR UPDATE SKIP LOCKED` (a coin another build is taking is skipped, not waited
for) and reserved with a guarded UPDATE; on SQLite (embedded mode) a build first takes
the database's write lock (`write_lock`), which serializes builds.

Errors: `CoinsTaken` when a guarded reservation met a coin someone else holds or that
was spent meanwhile (callers retry the selection without it or refuse).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, bindparam, or_, select, tuple_, update
from sqlalchemy.orm import Session, scoped_session

from chain import coins as chain_coins
from chain.model import Coin, ScriptBranch
from cosigner.errors import SpendStateError
from cosigner.model import Spend

DEFAULT_TTL = 900             # seconds (SPEND_RESERVATION_TTL's default)
Outpoint = tuple[str, int]


class CoinsTaken(SpendStateError):
    code = "coins_unavailable"


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def free_at(now: dt.datetime):
    return or_(Coin.reserved_by.is_(None), Coin.reserved_until.is_(None), Coin.reserved_until <= now)


def tip_height(session: Session) -> int | None:
    return chain_coins.tip_height(session)


def write_lock(session: Session, account_id: str) -> None:
    """SQLite: take the database write lock now (a no-op UPDATE), so reading the free
    coins and reserving them is one serialized step. PostgreSQL: nothing (row locks)."""
    if not _postgres(session):
        session.execute(update(ScriptBranch).where(ScriptBranch.account_id == account_id, ScriptBranch.branch == 1)
                        .values(next_index=ScriptBranch.next_index))


def candidates(session: Session, account_id: str, now: dt.datetime, *,
               include_own_unconfirmed: bool = False) -> list[Coin]:
    """Spendable coins (chain.coins.spendable: unspent, free, confirmed — or our own
    unconfirmed change when asked —, coinbase only once mature), not locked here."""
    return chain_coins.spendable(session, account_id, now, include_own_unconfirmed=include_own_unconfirmed)


def lock_next(session: Session, account_id: str, now: dt.datetime, *, exclude, limit: int,
              include_own_unconfirmed: bool = False) -> list[Coin]:
    """Lock up to `limit` more spendable coins, largest first, skipping rows other
    transactions hold (PostgreSQL FOR UPDATE SKIP LOCKED) and those in `exclude`.
    Concurrent builds calling this each get different coins."""
    tip = tip_height(session) or 0
    confirmed = Coin.block_height.is_not(None)
    if include_own_unconfirmed:
        confirmed = or_(confirmed, Coin.own_change.is_(True))
    stmt = select(Coin).where(Coin.account_id == account_id, Coin.spent_by_txid.is_(None), free_at(now), confirmed,
                              or_(Coin.coinbase.is_(False), Coin.block_height <= tip - chain_coins.COINBASE_MATURITY + 1))
    ops = _ops(exclude)
    if ops:
        stmt = stmt.where(tuple_(Coin.txid, Coin.vout).not_in(ops))
    stmt = stmt.order_by(Coin.amount_sat.desc(), Coin.txid, Coin.vout).limit(limit)
    if _postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.scalars(stmt))


def _ops(outpoints) -> list[Outpoint]:
    return sorted({(t, int(v)) for t, v in outpoints})


def _unspent(spent_by: str | None):
    """Unspent — or, for an RBF replacement, spent only by the unconfirmed `spent_by`."""
    if spent_by is None:
        return Coin.spent_by_txid.is_(None)
    return or_(Coin.spent_by_txid.is_(None), (Coin.spent_by_txid == spent_by) & Coin.spent_height.is_(None))


def lock(session: Session, outpoints, now: dt.datetime, *, spent_by: str | None = None,
         holder: str | None = None) -> set[Outpoint]:
    """The subset of `outpoints` this transaction now holds and finds free (or held by
    `holder`) (PostgreSQL: FOR UPDATE SKIP LOCKED, so rows another build is reserving
    are left out)."""
    ops = _ops(outpoints)
    if not ops:
        return set()
    free = free_at(now) if holder is None else or_(free_at(now), Coin.reserved_by == holder)
    stmt = select(Coin.txid, Coin.vout).where(tuple_(Coin.txid, Coin.vout).in_(ops), _unspent(spent_by), free)
    if _postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    return {(t, v) for t, v in session.execute(stmt)}


_COINS = Coin.__table__
# reserve()'s one statement, built once: unspent (or spent only by the unconfirmed
# `spent_by`; NULL matches nothing) and free (or already held by one of `mine`)
_RESERVE = (update(_COINS)
            .where(tuple_(_COINS.c.txid, _COINS.c.vout).in_(bindparam("outpoints", expanding=True)),
                   or_(_COINS.c.spent_by_txid.is_(None),
                       and_(_COINS.c.spent_by_txid == bindparam("spent_by"), _COINS.c.spent_height.is_(None))),
                   or_(_COINS.c.reserved_by.is_(None), _COINS.c.reserved_until.is_(None),
                       _COINS.c.reserved_until <= bindparam("now"),
                       _COINS.c.reserved_by.in_(bindparam("mine", expanding=True))))
            .values(reserved_by=bindparam("holder"), reserved_until=bindparam("until")))


def reserve(session: Session, outpoints, spend_id: str, until: dt.datetime, now: dt.datetime, *,
            spent_by: str | None = None, taking_from: str | None = None) -> None:
    """Reserve every outpoint for `spend_id` until `until` (re-reserving its own is
    fine; `taking_from` names a spend whose reservation may be taken over, e.g. the
    spend an RBF replacement replaces). All or nothing: raises CoinsTaken (and changes
    nothing the caller keeps, since it rolls back) when one is spent or held by another
    spend. One statement; Coin rows the session loaded are not refreshed by it."""
    ops = _ops(outpoints)
    if not ops:
        return
    result = session.connection().execute(_RESERVE, {
        "outpoints": ops, "spent_by": spent_by, "now": now, "holder": spend_id, "until": until,
        "mine": [spend_id] + ([taking_from] if taking_from else [])})
    if result.rowcount != len(ops):
        raise CoinsTaken("a coin of this spend was spent or is held by another spend",
                         details={"spend_id": spend_id})


def renew(session: Session, spend_id: str, until: dt.datetime) -> int:
    """Move the expiry of the coins `spend_id` still holds. Returns how many."""
    return session.execute(update(Coin).where(Coin.reserved_by == spend_id).values(reserved_until=until)
                           .execution_options(synchronize_session=False)).rowcount


def release(session: Session, spend_id: str) -> int:
    """Free every coin `spend_id` holds. Idempotent; returns how many were freed."""
    return chain_coins.release(session, spend_id)


def lookup(session: Session, outpoints) -> dict[Outpoint, Coin]:
    return chain_coins.lookup(session, _ops(outpoints))


def held_by(session: Session, spend_id: str) -> list[Coin]:
    return list(session.scalars(select(Coin).where(Coin.reserved_by == spend_id)))


def keep(session: Session, spend: Spend, now: dt.datetime, ttl: int, *, strict: bool) -> None:
    """Keep `spend`'s coins reserved until `ttl` seconds past now, or past the deadline
    it is held for (release_at, approval_expires_at). strict: (re)reserve every input,
    taking back a lapsed reservation when the coins are still free, else CoinsTaken;
    not strict: renew what it still holds (never raises) — nothing to write when this
    transaction already reserved them strictly until that same moment (a cosign reserves
    at submit and renews after its broadcast, with the same `now`)."""
    deadline = max([d for d in (spend.release_at, spend.approval_expires_at) if d is not None] + [now])
    until = deadline + dt.timedelta(seconds=ttl)
    real = session.registry() if isinstance(session, scoped_session) else session
    transaction = real.get_nested_transaction() or real.get_transaction()   # a savepoint counts on its own
    done = session.info.get(_RESERVED)
    if done is None or done.get("transaction") is not transaction:
        done = session.info[_RESERVED] = {"transaction": transaction}    # entries of this transaction only
    if strict:
        replaced = session.get(Spend, spend.replaces_id) if spend.replaces_id else None
        reserve(session, [(i["txid"], i["vout"]) for i in spend.inputs], spend.id, until, now,
                spent_by=replaced.txid if replaced is not None else None, taking_from=spend.replaces_id)
        done[spend.id] = until
    elif transaction is None or done.get(spend.id) != until:
        renew(session, spend.id, until)
    spend.reserved_until = until


# session.info key: {"transaction": the current transaction, spend id: until it reserved them strictly}
_RESERVED = "custos.reservations.strict"


def free(session: Session, spend: Spend) -> None:
    """Give the spend's coins back at once (same transaction as its state change)."""
    release(session, spend.id)
    spend.reserved_until = None
