"""Apply transactions to the index, and undo blocks. Runs in the caller's transaction;
no bitcoind call. Idempotent: applying the same block (or mempool transaction) twice
leaves the same rows, which is what makes restores that overlap the follower safe.

One batch (a block, or the new mempool transactions of a pass):
1. every output script is matched against `chain_scripts` in one set query;
2. every input outpoint (and every output of a matched transaction) is looked up in
   `chain_coins` in one set query; coins created earlier in the batch are in memory;
3. per account touched: coins created / spent, one `chain_account_txs` row, scripts
   marked used and the gap refilled (chain.scripts.mark_used);
4. an unconfirmed transaction that loses an input to this one is dropped (state
   replaced / conflicted) with everything that spent its outputs.
Events for the listeners are collected in `self.events`.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from chain import scripts as script_index
from chain import sql
from chain.events import Classifier, TxEvent
from chain.model import DEEP_CONFIRMATIONS, AccountTx, ChainBlock, Coin
from chain.txdata import BlockData, ChainTx


@dataclass
class _Touch:
    received: int = 0
    sent: int = 0
    inputs_ours: int = 0


@dataclass
class Stats:
    txs: int = 0
    coins_created: int = 0
    coins_spent: int = 0
    scripts_derived: int = 0


class Applier:
    def __init__(self, session: Session, now: dt.datetime, *, classifiers: tuple[Classifier, ...] = (),
                 account_filter: str | None = None):
        """`account_filter`: only this account's scripts and coins count (restores)."""
        self.session = session
        self.now = now
        self.classifiers = classifiers
        self.account_filter = account_filter
        self.events: list[TxEvent] = []
        self.stats = Stats()
        self._new_coins: dict[tuple[str, int], Coin] = {}     # transient until _flush_new_coins()
        self._coins: dict[tuple[str, int], Coin] = {}

    # ---- apply ------------------------------------------------------------------------
    def apply(self, txs: list[ChainTx], block: BlockData | None) -> Stats:
        s = self.session
        height, bhash = (block.height, block.hash) if block else (None, None)
        watched = sql.match_scripts(s, [o.script for t in txs for o in t.outputs])
        if self.account_filter:
            watched = {k: v for k, v in watched.items() if v[0] == self.account_filter}
        paying = {t.txid for t in txs if any(o.script in watched for o in t.outputs)}
        lookup = {i.txid for t in txs for i in t.inputs} | paying
        coins = self._coins = {(c.txid, c.vout): c for c in sql.coins_of_txids(s, list(lookup))
                               if not self.account_filter or c.account_id == self.account_filter}
        used: dict[tuple[str, int], int] = {}
        used_scripts: list[bytes] = []
        touched: list[tuple[ChainTx, int, dict[str, _Touch]]] = []
        for pos, tx in enumerate(txs):
            spent = [(i.txid, i.vout) for i in tx.inputs if (i.txid, i.vout) in coins]
            if not spent and tx.txid not in paying:
                continue
            per: dict[str, _Touch] = {}
            for key in spent:
                coin = coins[key]
                if coin.spent_by_txid and coin.spent_by_txid != tx.txid:
                    if coin.spent_block_hash is not None and block is None:
                        continue  # already spent in a block: this mempool view is stale
                    self.drop(coin.spent_by_txid, replaced_by=tx.txid, account_id=coin.account_id)
                    coin = coins[key]           # reloaded by drop()
                if coin.spent_by_txid != tx.txid or coin.spent_block_hash != bhash:
                    coin.spent_by_txid, coin.spent_height, coin.spent_block_hash = tx.txid, height, bhash
                    self.stats.coins_spent += 1
                t = per.setdefault(coin.account_id, _Touch())
                t.sent += coin.amount_sat
                t.inputs_ours += 1
            for out in tx.outputs:
                hit = watched.get(out.script)
                if hit is None:
                    continue
                acct, branch, index = hit
                t = per.setdefault(acct, _Touch())
                t.received += out.value
                coin = coins.get((tx.txid, out.n))
                if coin is None:
                    coin = Coin(txid=tx.txid, vout=out.n, account_id=acct, amount_sat=out.value, script=out.script,
                                branch=branch, index=index, coinbase=tx.coinbase, own_change=t.sent > 0,
                                block_height=height, block_hash=bhash, spent_by_txid=None, spent_height=None,
                                spent_block_hash=None, reserved_by=None, reserved_until=None, first_seen=self.now)
                    self._new_coins[(tx.txid, out.n)] = coin
                    coins[(tx.txid, out.n)] = coin
                    self.stats.coins_created += 1
                elif block is not None and coin.block_hash != bhash:
                    coin.block_height, coin.block_hash = height, bhash
                used[(acct, branch)] = max(used.get((acct, branch), -1), index)
                used_scripts.append(out.script)
            touched.append((tx, pos, per))
        # the spent inputs first, then the new coins: the signing gate indexes its own
        # broadcast in that order (it holds the inputs reserved), so the two never wait on
        # each other in a cycle; and a coin the gate committed meanwhile is left as it is
        s.flush()
        self._flush_new_coins()
        self._write_txs(touched, block)
        self.stats.scripts_derived += script_index.mark_used(s, used, used_scripts)
        return self.stats

    _COIN_COLUMNS = tuple(c.key for c in Coin.__table__.columns)

    def _flush_new_coins(self, reload: bool = False) -> None:
        """Insert the coins created so far in one multi-row statement (their final
        state: a coin created and spent in the same block is inserted spent); one that
        exists already (the gate indexed our own broadcast meanwhile) is left as it is.
        `reload`: replace the in-memory records by session objects (later changes in
        the same batch are then flushed by the session)."""
        if not self._new_coins:
            return
        sql.insert_ignore(self.session, Coin, [{k: getattr(c, k) for k in self._COIN_COLUMNS}
                                             for c in self._new_coins.values()])
        if reload:
            for key in self._new_coins:
                self._coins[key] = self.session.get(Coin, key)
        self._new_coins = {}

    def _fee(self, tx: ChainTx, t: _Touch) -> int | None:
        if t.inputs_ours == 0:
            return None
        if tx.fee is not None:
            return tx.fee
        if t.inputs_ours == len(tx.inputs):
            return t.sent - sum(o.value for o in tx.outputs)
        if all(i.prev_value is not None for i in tx.inputs):
            return sum(i.prev_value for i in tx.inputs) - sum(o.value for o in tx.outputs)
        return None

    def _write_txs(self, touched, block: BlockData | None) -> None:
        if not touched:
            return
        s = self.session
        existing = {(r.account_id, r.txid): r for r in sql.select_in(s, AccountTx, AccountTx.txid,
                                                                     [tx.txid for tx, _, _ in touched])}
        inserts: list[dict] = []
        for tx, pos, per in touched:
            for acct, t in per.items():
                row = existing.get((acct, tx.txid))
                direction = "send" if t.inputs_ours else "receive"
                new_state = "confirmed" if block else "mempool"
                values = dict(received_sat=t.received, sent_sat=t.sent, net_sat=t.received - t.sent,
                              fee_sat=self._fee(tx, t))
                if row is None:
                    inserts.append(dict(account_id=acct, txid=tx.txid, state=new_state, first_seen=self.now,
                                        updated_at=self.now, replaced_by=None,
                                        block_height=block.height if block else None,
                                        block_hash=block.hash if block else None, block_pos=pos if block else None,
                                        block_time=block.time if block else None, **values))
                    self.stats.txs += 1
                    self.events.append(TxEvent("tx_seen", acct, tx.txid, None, new_state, direction,
                                               block.height if block else None))
                    continue
                if block is None and row.state in ("mempool", "confirmed", "deep"):
                    continue  # already known; a mempool view never downgrades a confirmation
                for k, v in values.items():
                    if v is not None or k != "fee_sat":
                        setattr(row, k, v)
                if block is not None and row.block_hash == block.hash:
                    continue
                old = row.state
                row.state, row.replaced_by, row.updated_at = new_state, None, self.now
                self._place(row, block, pos)
                self.events.append(TxEvent("tx_state", acct, tx.txid, old, new_state, direction,
                                           row.block_height))
        sql.insert_ignore(s, AccountTx, inserts)     # the gate may have committed it meanwhile

    @staticmethod
    def _place(row: AccountTx, block: BlockData | None, pos: int) -> None:
        if block is None:
            row.block_height = row.block_hash = row.block_pos = row.block_time = None
        else:
            row.block_height, row.block_hash, row.block_pos, row.block_time = block.height, block.hash, pos, block.time

    # ---- conflicts --------------------------------------------------------------------
    def _classify(self, account_id: str, old_txid: str, new_txid: str | None) -> str:
        if new_txid is None:
            return "conflicted"
        for fn in self.classifiers:
            verdict = fn(self.session, account_id, old_txid, new_txid)
            if verdict:
                return verdict
        return "replaced"

    def drop(self, txid: str, *, replaced_by: str | None, account_id: str | None = None,
             state: str | None = None) -> int:
        """An unconfirmed transaction left (or will leave) the mempool for good: its
        account rows become replaced / conflicted, the coins it created disappear (and
        whatever spent them is dropped too, as conflicted), the coins it spent are free
        again. Confirmed rows are never touched. Returns account rows changed."""
        s = self.session
        self._flush_new_coins(reload=True)
        rows = list(s.scalars(select(AccountTx).where(AccountTx.txid == txid, AccountTx.state == "mempool")))
        if not rows:
            return 0
        for row in rows:
            verdict = state or self._classify(row.account_id, txid, replaced_by)
            old = row.state
            row.state, row.updated_at = verdict, self.now
            row.replaced_by = replaced_by if verdict == "replaced" else None
            self.events.append(TxEvent("tx_state", row.account_id, txid, old, verdict,
                                       "send" if row.sent_sat else "receive", None, row.replaced_by))
        created = list(s.scalars(select(Coin).where(Coin.txid == txid, Coin.block_hash.is_(None))))
        for coin in created:
            if coin.spent_by_txid and coin.spent_block_hash is None:
                self.drop(coin.spent_by_txid, replaced_by=None, state="conflicted")
        s.flush()
        s.execute(delete(Coin).where(Coin.txid == txid, Coin.block_hash.is_(None)))
        s.execute(update(Coin).where(Coin.spent_by_txid == txid, Coin.spent_block_hash.is_(None))
                  .values(spent_by_txid=None, spent_height=None))
        s.expire_all()
        return len(rows)

    # ---- blocks -----------------------------------------------------------------------
    def undo_block(self, block_hash: str, height: int) -> int:
        """Disconnect one block: its account transactions go back to the mempool state,
        coins it created become unconfirmed, coins it spent have an unconfirmed spender.
        The mempool pass later settles them (re-confirmed, or conflicted). Returns the
        account rows moved."""
        s = self.session
        rows = list(s.scalars(select(AccountTx).where(AccountTx.block_hash == block_hash)))
        for row in rows:
            old = row.state
            row.state, row.updated_at = "mempool", self.now
            self._place(row, None, 0)
            self.events.append(TxEvent("tx_state", row.account_id, row.txid, old, "mempool",
                                       "send" if row.sent_sat else "receive", None))
        s.flush()
        s.execute(update(Coin).where(Coin.block_hash == block_hash).values(block_hash=None, block_height=None))
        s.execute(update(Coin).where(Coin.spent_block_hash == block_hash)
                  .values(spent_block_hash=None, spent_height=None))
        s.execute(delete(ChainBlock).where(ChainBlock.height == height, ChainBlock.hash == block_hash))
        self.settle_depth(height - 1)
        s.expire_all()
        return len(rows)

    def settle_depth(self, tip_height: int) -> None:
        """confirmed ↔ deep for the tip `tip_height` (deep = DEEP_CONFIRMATIONS or more)."""
        s = self.session
        line = tip_height - DEEP_CONFIRMATIONS + 1
        for row in s.scalars(select(AccountTx).where(AccountTx.state == "confirmed", AccountTx.block_height <= line)):
            row.state, row.updated_at = "deep", self.now
            self.events.append(TxEvent("tx_state", row.account_id, row.txid, "confirmed", "deep",
                                       "send" if row.sent_sat else "receive", row.block_height))
        for row in s.scalars(select(AccountTx).where(AccountTx.state == "deep", AccountTx.block_height > line)):
            row.state, row.updated_at = "confirmed", self.now
            self.events.append(TxEvent("tx_state", row.account_id, row.txid, "deep", "confirmed",
                                       "send" if row.sent_sat else "receive", row.block_height))
