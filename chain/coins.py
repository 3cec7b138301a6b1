"""Reading the index: balances, history, spendable coins, reservations.

All in the caller's transaction, all O(the account's rows), integer satoshis.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, case, func, or_, select, tuple_, update
from sqlalchemy.orm import Session

from chain import sql
from chain.errors import ChainError
from chain.model import AccountTx, ChainBlock, Coin

COINBASE_MATURITY = 100


class CoinUnavailable(ChainError):
    """A coin to reserve is unknown, spent, or reserved by another spend."""

    def __init__(self, outpoints: list[str]):
        super().__init__(f"{len(outpoints)} coin(s) not available")
        self.outpoints = outpoints


def tip_height(session: Session) -> int | None:
    """Height of the follower's tip (None before its first block)."""
    return session.scalar(select(func.max(ChainBlock.height)))


def _free(now: dt.datetime):
    return or_(Coin.reserved_by.is_(None), Coin.reserved_until.is_(None), Coin.reserved_until <= now)


def balance(session: Session, account_id: str, now: dt.datetime) -> dict[str, int]:
    """confirmed (mature, confirmed, not spent by any known transaction — reserved
    coins included), trusted_pending (own unconfirmed change), untrusted_pending
    (unconfirmed foreign payments), immature (coinbase), reserved_sat (the part of
    confirmed reserved by spends being built)."""
    tip = tip_height(session) or 0
    out = {"confirmed": 0, "trusted_pending": 0, "untrusted_pending": 0, "immature": 0, "reserved_sat": 0}
    rows = session.execute(select(Coin.amount_sat, Coin.block_height, Coin.coinbase, Coin.own_change,
                                  Coin.reserved_by, Coin.reserved_until)
                           .where(Coin.account_id == account_id, Coin.spent_by_txid.is_(None)))
    for amount, height, coinbase, own_change, reserved_by, reserved_until in rows:
        if height is None:
            out["trusted_pending" if own_change else "untrusted_pending"] += amount
        elif coinbase and tip - height + 1 < COINBASE_MATURITY:
            out["immature"] += amount
        else:
            out["confirmed"] += amount
            if reserved_by is not None and reserved_until is not None and reserved_until > now:
                out["reserved_sat"] += amount
    return out


def spendable(session: Session, account_id: str, now: dt.datetime, *, include_own_unconfirmed: bool = False,
              for_update: bool = False) -> list[Coin]:
    """Coins a new spend may use: unspent, mature, confirmed (or own unconfirmed change
    when asked), not reserved or reserved with an expired reservation. Oldest first.
    `for_update`: lock the rows (PostgreSQL: FOR UPDATE SKIP LOCKED, so two concurrent
    builds never get the same coin; SQLite: the transaction's write lock)."""
    tip = tip_height(session) or 0
    confirmed = Coin.block_height.is_not(None)
    if include_own_unconfirmed:
        confirmed = or_(confirmed, Coin.own_change.is_(True))
    stmt = (select(Coin).where(Coin.account_id == account_id, Coin.spent_by_txid.is_(None), confirmed, _free(now),
                               or_(Coin.coinbase.is_(False), Coin.block_height <= tip - COINBASE_MATURITY + 1))
            .order_by(case((Coin.block_height.is_(None), 1), else_=0), Coin.block_height, Coin.txid, Coin.vout))
    if for_update:
        stmt = stmt.with_for_update(skip_locked=sql.is_postgres(session))
    return list(session.scalars(stmt))


_COINS = Coin.__table__
_BY_OUTPOINT = select(_COINS).where(tuple_(_COINS.c.txid, _COINS.c.vout).in_(bindparam("outpoints", expanding=True)))
READ_CHUNK = 400      # outpoints per statement (2 bound parameters each)


def read(session: Session, outpoints: list[tuple[str, int]]) -> dict[tuple[str, int], object]:
    """The index's coins among `outpoints` (any state) as read-only rows (the Coin
    columns as attributes; changing them changes nothing), in one statement per
    READ_CHUNK outpoints. Pending ORM changes are not flushed first: for reads before a
    transaction writes (inspection)."""
    wanted = sorted({(t, int(v)) for t, v in outpoints})
    conn = session.connection()
    return {(row.txid, row.vout): row for i in range(0, len(wanted), READ_CHUNK)
            for row in conn.execute(_BY_OUTPOINT, {"outpoints": wanted[i:i + READ_CHUNK]})}


def lookup(session: Session, outpoints: list[tuple[str, int]]) -> dict[tuple[str, int], Coin]:
    """The index's coins among `outpoints` (any state)."""
    wanted = set(outpoints)
    return {(c.txid, c.vout): c for c in sql.coins_of_txids(session, [t for t, _ in wanted])
            if (c.txid, c.vout) in wanted}


def reserve(session: Session, outpoints: list[tuple[str, int]], spend_id: str, until: dt.datetime,
            now: dt.datetime) -> None:
    """Reserve every coin of `outpoints` for `spend_id` until `until`, all or none.
    Re-reserving coins the same spend holds renews them. Raises CoinUnavailable
    naming the coins that are unknown, spent, or held by another unexpired spend."""
    coins = lookup(session, outpoints)
    bad = []
    for op in outpoints:
        c = coins.get(tuple(op))
        held = c is not None and c.reserved_by not in (None, spend_id) and c.reserved_until and c.reserved_until > now
        if c is None or c.spent_by_txid is not None or held:
            bad.append(f"{op[0]}:{op[1]}")
    if bad:
        raise CoinUnavailable(bad)
    for c in coins.values():
        c.reserved_by, c.reserved_until = spend_id, until
    session.flush()


def release(session: Session, spend_id: str) -> int:
    """Free every coin reserved by `spend_id`. Idempotent; returns coins freed."""
    result = session.execute(update(Coin).where(Coin.reserved_by == spend_id)
                             .values(reserved_by=None, reserved_until=None))
    return result.rowcount or 0


def history(session: Session, account_id: str, *, offset: int = 0, limit: int = 50) -> tuple[list[dict], bool]:
    """One page of the account's transactions, newest first: unconfirmed (mempool)
    first, then by block height and position in the block, then the ones that never
    confirmed (conflicted / replaced). Returns (entries, more)."""
    tip = tip_height(session) or 0
    rows = list(session.scalars(
        select(AccountTx).where(AccountTx.account_id == account_id)
        .order_by(case((AccountTx.state == "mempool", 0), else_=1), case((AccountTx.block_height.is_(None), 1), else_=0),
                  AccountTx.block_height.desc(), AccountTx.block_pos.desc(), AccountTx.id.desc())
        .offset(offset).limit(limit + 1)))
    more = len(rows) > limit
    out = []
    for r in rows[:limit]:
        outgoing = r.sent_sat > 0
        fee = r.fee_sat if outgoing else None
        amount = (-r.net_sat - (fee or 0)) if outgoing else r.net_sat
        confirmations = tip - r.block_height + 1 if r.block_height is not None else 0
        seen = r.first_seen.timestamp()
        out.append({"txid": r.txid, "direction": "send" if outgoing else "receive", "amount_sat": amount,
                    "fee_sat": fee, "confirmations": confirmations, "status": r.state,
                    "replaced_by": r.replaced_by, "block_height": r.block_height,
                    "time": int(min(seen, r.block_time or seen))})
    return out, more
