"""The node's state and its state transitions, under one lock.

`Node` owns the chain, the mempool, the store and the loaded wallets. Every RPC handler
takes `node.lock` (re-entrant) for its whole duration, so the state a request sees is
consistent. Durable writes happen before the in-memory change they describe.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from devnet import mempool as mp
from devnet.chain import Block, ChainState, Coin
from devnet.errors import RPCFailure, TxRejected, WALLET_NOT_FOUND, WALLET_ALREADY_LOADED, VERIFY_REJECTED
from devnet.store import Store
from devnet.txutil import TxInfo, parse_tx
from devnet import reorg
from devnet import validation as v
from devnet.wallet import Wallet, DEFAULT_KEYPOOL, TIMESTAMP_WINDOW

FEE_HISTORY_BLOCKS = 50


class Node:
    def __init__(self, datadir: Path, *, fallbackfee: int | None = None,
                 keypool: int = DEFAULT_KEYPOOL, clock=time.time, blockfilterindex: bool = True):
        """`fallbackfee` in sat/kvB (None disables it); `clock` returns UNIX seconds;
        `blockfilterindex` like Core's -blockfilterindex (scanblocks needs it)."""
        self.blockfilterindex = blockfilterindex
        self.datadir = Path(datadir)
        self.netdir = self.datadir / "regtest"
        self.lock = threading.RLock()
        self.clock = clock
        self.started = clock()
        self.fallbackfee = fallbackfee
        self.keypool = keypool
        self.store = Store(self.netdir / "devnet.sqlite")
        self.chain = ChainState()
        self.mempool = mp.Mempool()
        self.wallets: dict[str, Wallet] = {}
        self.block_feerates: list[list[float]] = [[]]      # sat/vB per tx, per height
        self.block_fees: list[list[int]] = [[]]            # sat per non-coinbase tx, per height
        self.stopping = threading.Event()
        self.zmq = None                                    # devnet.zmqpub.Publisher when publishing
        self.invalid: set[str] = set()                      # invalidateblock'd hashes
        self.reverse_seq = -1                              # next preciousblock sequence id
        for height, raw in self.store.blocks():
            self._connect(Block.parse(raw), persist=False)
        reorg.load_side_blocks(self)
        for txid, raw, when in list(self.store.mempool()):
            try:
                self._accept(parse_tx(raw), max_feerate=None, when=when, persist=False)
            except RPCFailure:
                self.store.mempool_remove([txid])
        for name in self.store.startup_wallets():
            self.load_wallet(name)

    def now(self) -> int:
        return int(self.clock())

    # ---- transactions -----------------------------------------------------------------
    def submit(self, ti: TxInfo, max_feerate: int | None = mp.DEFAULT_MAX_FEERATE) -> mp.Acceptance:
        """sendrawtransaction semantics: -27 when the tx's outputs are already in the
        UTXO set, success without change when it is already in the mempool."""
        with self.lock:
            if ti.txid in self.mempool:
                return mp.Acceptance(self.mempool.entries[ti.txid], [])
            if any((ti.txid, n) in self.chain.utxos for n in range(len(ti.tx.vout))):
                raise RPCFailure(-27, "Transaction outputs already in utxo set")
            return self._accept(ti, max_feerate=max_feerate, when=self.now())

    def test_accept(self, ti: TxInfo, max_feerate: int | None) -> mp.Acceptance:
        with self.lock:
            if any((ti.txid, n) in self.chain.utxos for n in range(len(ti.tx.vout))):
                raise TxRejected(VERIFY_REJECTED, "txn-already-known")
            return mp.accept(ti, self.chain, self.mempool, max_feerate=max_feerate, test_only=True)

    def _accept(self, ti, *, max_feerate, when, persist=True) -> mp.Acceptance:
        acc = mp.accept(ti, self.chain, self.mempool, max_feerate=max_feerate, now=when)
        if persist:
            self.store.mempool_add(ti.txid, ti.raw, acc.entry.time, acc.replaced)
        for w in self.wallets.values():
            for old in acc.replaced:
                w.deactivate(old, replaced_by=ti.txid)
            w.add_tx(ti, now=acc.entry.time)
        if self.zmq is not None:  # each event carries the sequence number it used, as in Core
            seq = self.mempool.sequence - 1 - len(acc.replaced)
            for n, old in enumerate(acc.replaced):
                self.zmq.tx_removed(old, seq + n)
            self.zmq.tx_added(ti.txid, self.mempool.sequence - 1)
        return acc

    def lookup_tx(self, txid: str):
        """(TxInfo, BlockIndex | None) from the mempool or the chain, or None."""
        e = self.mempool.entries.get(txid)
        if e is not None:
            return e.ti, None
        return self.chain.get_tx(txid)

    # ---- blocks -----------------------------------------------------------------------
    def mine(self, nblocks: int, spk: bytes, txs: list[TxInfo] | None = None) -> list[str]:
        """Mine `nblocks` blocks paying to `spk`: from the mempool by fee rate, or the
        exact `txs` (generateblock; validated here, -25/-26 on failure, one block)."""
        hashes = []
        with self.lock:
            for _ in range(nblocks):
                if txs is None:
                    chosen = self.mempool.select()
                    block_txs, fees = [e.ti for e in chosen], sum(e.fee for e in chosen)
                else:
                    block_txs, fees = txs, self._validate_block_txs(txs)
                blk = self.chain.build_block(block_txs, spk, fees, now=self.now())
                self._connect(blk)
                hashes.append(blk.hash)
        return hashes

    def _validate_block_txs(self, txs: list[TxInfo]) -> int:
        height = self.chain.height + 1
        prev_mtp = self.chain.median_time_past()
        created, spent, fees = {}, set(), 0
        for ti in txs:
            v.check_context_free(ti)
            if not v.is_final(ti, height, prev_mtp):
                v.reject("bad-txns-nonfinal")

            def lookup(op):
                if op in spent:
                    return None
                return created.get(op) or self.chain.utxos.get(op)
            fee, _ = v.check_inputs(ti, lookup, height, prev_mtp, self.chain.median_time_past)
            fees += fee
            for vin in ti.tx.vin:
                spent.add((vin.txid.hex(), vin.vout))
            for n, o in enumerate(ti.tx.vout):
                created[(ti.txid, n)] = Coin(o.value, o.script_pubkey.data, height, False)
        return fees

    def _connect(self, blk: Block, persist: bool = True) -> None:
        rates, fees, created = [], [], {}
        for t in blk.txs[1:]:
            value_in = 0
            for vin in t.tx.vin:
                op = (vin.txid.hex(), vin.vout)
                coin = self.chain.utxos.get(op) or created.get(op)
                value_in += coin.value if coin else 0
            for n, o in enumerate(t.tx.vout):
                created[(t.txid, n)] = o
            fees.append(value_in - sum(o.value for o in t.tx.vout))
            rates.append(fees[-1] / t.vsize)
        if persist:
            mined = [t.txid for t in blk.txs[1:]]
            conflicts = self._conflicts(blk.txs[1:])
            self.store.add_block(self.chain.height + 1, blk.hash, blk.serialize(), mined, conflicts)
        bi = self.chain.connect(blk)
        self.block_feerates.append(rates)
        self.block_fees.append(fees)
        evicted = self.mempool.remove_for_block(blk.txs[1:])
        if self.zmq is not None and persist:
            for e in evicted:
                self.zmq.tx_removed(e.ti.txid, e.removed_seq)
            self.zmq.block_connected(blk.hash)
        for w in self.wallets.values():
            for pos, t in enumerate(blk.txs):
                w.add_tx(t, bi.height, blk, pos)
            for e in evicted:
                w.deactivate(e.ti.txid, conflicted=self._conflicting_txid(e.ti, blk))

    def _conflicts(self, txs: list[TxInfo]) -> list[str]:
        out = set()
        for t in txs:
            for vin in t.tx.vin:
                other = self.mempool.spenders.get((vin.txid.hex(), vin.vout))
                if other and other != t.txid:
                    out |= {other} | self.mempool.descendants(other)
        return sorted(out)

    @staticmethod
    def _conflicting_txid(ti: TxInfo, blk: Block) -> str | None:
        ops = {(vin.txid.hex(), vin.vout) for vin in ti.tx.vin}
        for t in blk.txs[1:]:
            if any((vin.txid.hex(), vin.vout) in ops for vin in t.tx.vin):
                return t.txid
        return None

    def estimate_feerate(self, conf_target: int) -> float | None:
        """sat/vB estimate from the last blocks' transactions, or None without data."""
        recent = [r for rates in self.block_feerates[-FEE_HISTORY_BLOCKS:] for r in rates]
        if not recent:
            return None
        recent.sort()
        pct = 0.5 if conf_target > 2 else 0.85
        return max(recent[min(len(recent) - 1, int(len(recent) * pct))], v.MIN_RELAY_FEERATE)

    # ---- wallets ----------------------------------------------------------------------
    def wallet(self, name: str) -> Wallet:
        w = self.wallets.get(name)
        if w is None:
            raise RPCFailure(WALLET_NOT_FOUND, "Requested wallet does not exist or is not loaded")
        return w

    def load_wallet(self, name: str) -> Wallet:
        if name in self.wallets:
            raise RPCFailure(WALLET_ALREADY_LOADED, f"Wallet \"{name}\" is already loaded.")
        meta = self.store.wallet_meta(name)
        if meta is None:
            raise RPCFailure(WALLET_NOT_FOUND,
                             f"Wallet file verification failed. Failed to load database path '{self.netdir / 'wallets' / name}'. Path does not exist.")
        w = Wallet(name, meta, self.store, self.keypool)
        starts = [d.rec["timestamp"] for d in w.descs]
        if starts:
            self.rescan(w, self.height_for_time(min(starts)))
        self.wallets[name] = w
        return w

    def height_for_time(self, timestamp: int) -> int:
        """First height whose block time is ≥ timestamp − TIMESTAMP_WINDOW (Core's rescan start)."""
        cutoff = timestamp - TIMESTAMP_WINDOW
        for bi in self.chain.blocks:
            if bi.block.time >= cutoff:
                return bi.height
        return self.chain.height + 1

    def rescan(self, w: Wallet, start: int, stop: int | None = None) -> tuple[int, int]:
        """Scan blocks [start, stop] then the mempool into `w`; returns the range scanned."""
        stop = self.chain.height if stop is None else min(stop, self.chain.height)
        for h in range(max(start, 0), stop + 1):
            blk = self.chain.blocks[h].block
            for pos, t in enumerate(blk.txs):
                w.add_tx(t, h, blk, pos)
        for e in list(self.mempool.entries.values()):
            w.add_tx(e.ti, now=e.time)
        return start, stop
