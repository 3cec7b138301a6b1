"""Descriptor wallets: derived scripts, the wallet's transactions, UTXOs and balances.

In memory: `spk_map` (scriptPubKey → descriptor, index), `outputs` (every wallet-owned
output of an active transaction) and `spent` (outpoint → spending wallet tx) give the
UTXO set as outputs − spent in O(1) per update. Durable state (descriptors, flags) goes
through `store`; transactions are rebuilt by rescanning the chain on load.
Amounts in satoshis; heights as in ChainState; `None` height = unconfirmed.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from embit import bip32
from embit.descriptor import Descriptor

from devnet import descriptors as dsc
from devnet.chain import COINBASE_MATURITY
from chain.derive import spk_deriver
from devnet.encoding import NETWORK
from devnet.txutil import TxInfo

DEFAULT_KEYPOOL = 100
TIMESTAMP_WINDOW = 7200   # seconds a rescan starts before a descriptor's timestamp


@dataclass
class WalletDescriptor:
    """One imported descriptor; `rec` is its persisted record."""
    rec: dict
    desc: Descriptor
    spks: dict[int, bytes] = field(default_factory=dict)
    derived: dict[int, Descriptor] = field(default_factory=dict)
    cache: dict = field(default_factory=dict)       # memoized per-descriptor facts

    @property
    def ranged(self) -> bool:
        return dsc.is_range(self.desc)

    def address(self, index: int) -> str | None:
        """Address of the script at `index` (memoized)."""
        key = ("addr", index)
        if key not in self.cache:
            from devnet.encoding import address_of
            self.cache[key] = address_of(self.spks[index]) if index in self.spks else \
                address_of(self.at(index).script_pubkey().data)
        return self.cache[key]

    def at(self, index: int) -> Descriptor:
        """The descriptor derived at `index` (memoized; itself when not ranged)."""
        if not self.ranged:
            return self.desc
        d = self.derived.get(index)
        if d is None:
            d = self.derived[index] = self.desc.derive(index)
        return d


@dataclass
class WOut:
    txid: str
    n: int
    value: int
    spk: bytes
    wd: WalletDescriptor
    index: int


@dataclass
class WTx:
    ti: TxInfo
    time_received: int
    height: int | None = None        # block height when confirmed
    block_hash: str | None = None
    block_pos: int | None = None
    block_time: int | None = None
    active: bool = True              # confirmed or in the mempool
    replaced_by: str | None = None
    conflicted_by: str | None = None
    abandoned: bool = False
    coinbase: bool = False
    debit: int = 0                   # value of our inputs
    from_me: bool = False            # every input is ours


class Wallet:
    def __init__(self, name: str, meta: dict, store, keypool: int = DEFAULT_KEYPOOL):
        self.name = name
        self.meta = meta
        self.store = store
        self.keypool = keypool
        self.descs: list[WalletDescriptor] = []
        self.spk_map: dict[bytes, tuple[WalletDescriptor, int]] = {}
        self.txs: dict[str, WTx] = {}
        self.outputs: dict[tuple[str, int], WOut] = {}
        self.spent: dict[tuple[str, int], str] = {}
        self.locked: set[tuple[str, int]] = set()
        self.labels: dict[bytes, str] = {}
        self.flags = store.txflags(name) if store else {}
        for rec in (store.descriptors(name) if store else []):
            self._attach(rec)

    # ---- descriptors ------------------------------------------------------------------
    @property
    def private_keys_enabled(self) -> bool:
        return not self.meta.get("disable_private_keys", False)

    def _attach(self, rec: dict) -> WalletDescriptor:
        wd = WalletDescriptor(rec, dsc.parse(rec["desc"]))
        self.descs = [d for d in self.descs if d.rec["id"] != rec["id"]]
        self.descs.append(wd)
        self._derive(wd)
        if rec.get("label") is not None and not wd.ranged:
            self.labels[dsc.derive_spk(wd.desc, 0)] = rec["label"]
        return wd

    def _derive(self, wd: WalletDescriptor) -> None:
        lo, hi = wd.rec["range"] if wd.ranged else (0, 0)
        if wd.ranged and "fast" not in wd.cache:
            wd.cache["fast"] = spk_deriver(wd.desc)
        fast = wd.cache.get("fast")
        for i in range(lo, hi + 1):
            if i not in wd.spks:
                spk = fast(i) if fast else wd.at(i).script_pubkey().data
                wd.spks[i] = spk
                self.spk_map.setdefault(spk, (wd, i))

    def add_descriptor(self, rec: dict) -> WalletDescriptor:
        """Import (or update) a descriptor record; deactivates others of the same type and
        branch when `active`. Persists every changed record."""
        changed = [rec]
        if rec["active"]:
            new_type = output_type(dsc.parse(rec["desc"]))
            for other in self.descs:
                o = other.rec
                if o["id"] != rec["id"] and o["active"] and o["internal"] == rec["internal"] \
                        and output_type(other.desc) == new_type:
                    o["active"] = False
                    changed.append(o)
        if self.store:
            self.store.put_descriptors(self.name, changed)
        return self._attach(rec)

    def active(self, internal: bool, otype: str | None = None) -> WalletDescriptor | None:
        """The active descriptor for a branch and Core output type ("bech32" covers
        p2wpkh and p2wsh, "bech32m" p2tr, "legacy", "p2sh-segwit"); without a type,
        bech32 first, then anything active on that branch."""
        cands = [d for d in self.descs if d.rec["active"] and d.rec["internal"] == internal]
        if otype:
            cands = [d for d in cands if output_type(d.desc) == otype]
        cands.sort(key=lambda d: (output_type(d.desc) != "bech32", d.desc.scriptpubkey_type() != "p2wpkh"))
        return cands[0] if cands else None

    def next_address(self, internal: bool, otype: str | None = None) -> tuple[str, WalletDescriptor, int] | None:
        """Hand out the next unused index of the active descriptor and top up."""
        wd = self.active(internal, otype)
        if wd is None:
            return None
        idx = wd.rec["next_index"]
        self.mark_used(wd, idx)
        return dsc.derive_address(wd.desc, idx), wd, idx

    def mark_used(self, wd: WalletDescriptor, idx: int) -> None:
        if not wd.ranged:
            return
        changed = False
        if idx >= wd.rec["next_index"]:
            wd.rec["next_index"] = idx + 1
            changed = True
        if wd.rec["active"] and wd.rec["range"][1] < wd.rec["next_index"] + self.keypool - 1:
            wd.rec["range"][1] = wd.rec["next_index"] + self.keypool - 1
            self._derive(wd)
            changed = True
        if changed and self.store:
            self.store.put_descriptors(self.name, [wd.rec])

    # ---- transactions -----------------------------------------------------------------
    def is_relevant(self, ti: TxInfo) -> bool:
        if any(o.script_pubkey.data in self.spk_map for o in ti.tx.vout):
            return True
        return any((vin.txid.hex(), vin.vout) in self.outputs for vin in ti.tx.vin)

    def add_tx(self, ti: TxInfo, height: int | None = None, block=None, pos: int | None = None,
               now: int | None = None) -> bool:
        """Record a mempool (height None) or confirmed transaction if it touches the
        wallet. Idempotent. Returns True when the wallet recorded it. Being called means
        the tx is in the mempool or the chain, so an earlier abandon no longer holds."""
        wtx = self.txs.get(ti.txid)
        if wtx is None:
            if not self.is_relevant(ti):
                return False
            flags = self.flags.get(ti.txid, {})
            wtx = WTx(ti, flags.get("time", int(now or time.time())), coinbase=pos == 0)
            if self.store and "time" not in flags:
                self.flags[ti.txid] = {**flags, "time": wtx.time_received}
                self.store.put_txflags(self.name, ti.txid, self.flags[ti.txid])
            self.txs[ti.txid] = wtx
        if height is not None:
            wtx.height, wtx.block_hash, wtx.block_pos, wtx.block_time = height, block.hash, pos, block.time
            wtx.replaced_by = None
        if wtx.abandoned:
            wtx.abandoned = False
            self.set_flag(ti.txid, "abandoned", False)
        self._activate(wtx)
        return True

    def _activate(self, wtx: WTx) -> None:
        ti = wtx.ti
        wtx.active = True
        ours = 0
        debit = 0
        for vin in ti.tx.vin:
            op = (vin.txid.hex(), vin.vout)
            out = self.outputs.get(op)
            if out is not None:
                ours += 1
                debit += out.value
                self.spent[op] = ti.txid
        wtx.debit = debit
        wtx.from_me = ours == len(ti.tx.vin) and not wtx.coinbase
        for n, o in enumerate(ti.tx.vout):
            hit = self.spk_map.get(o.script_pubkey.data)
            if hit:
                wd, idx = hit
                self.outputs[(ti.txid, n)] = WOut(ti.txid, n, o.value, o.script_pubkey.data, wd, idx)
                self.mark_used(wd, idx)

    def deactivate(self, txid: str, replaced_by: str | None = None, conflicted: str | None = None) -> None:
        """A transaction left the mempool without confirming (replaced, conflicted,
        abandoned): release its inputs and drop its outputs."""
        wtx = self.txs.get(txid)
        if wtx is None or wtx.height is not None:
            return
        wtx.active = False
        wtx.replaced_by = replaced_by or wtx.replaced_by
        wtx.conflicted_by = conflicted or wtx.conflicted_by
        for vin in wtx.ti.tx.vin:
            op = (vin.txid.hex(), vin.vout)
            if self.spent.get(op) == txid:
                del self.spent[op]
        for n in range(len(wtx.ti.tx.vout)):
            self.outputs.pop((txid, n), None)

    def unconfirm(self, txid: str, coinbase: bool = False) -> None:
        """Its block was disconnected (reorg): the transaction is unconfirmed again; a
        coinbase cannot be, so it leaves the wallet's active set."""
        wtx = self.txs.get(txid)
        if wtx is None:
            return
        wtx.height = wtx.block_hash = wtx.block_pos = wtx.block_time = None
        if coinbase:
            self.deactivate(txid)

    def set_flag(self, txid: str, key: str, value) -> None:
        self.flags.setdefault(txid, {})[key] = value
        if self.store:
            self.store.put_txflags(self.name, txid, self.flags[txid])

    # ---- queries ----------------------------------------------------------------------
    def confirmations(self, wtx: WTx, tip_height: int) -> int:
        if wtx.height is not None:
            return tip_height - wtx.height + 1
        if wtx.conflicted_by and wtx.conflicted_by in self.txs and self.txs[wtx.conflicted_by].height is not None:
            return -(tip_height - self.txs[wtx.conflicted_by].height + 1)
        return 0

    def unspent(self):
        """Yield (WOut, WTx) for every unspent wallet output of an active tx."""
        for op, out in self.outputs.items():
            if op not in self.spent:
                yield out, self.txs[out.txid]

    def balances(self, tip_height: int) -> dict[str, int]:
        trusted = pending = immature = 0
        for out, wtx in self.unspent():
            if wtx.height is None:
                if wtx.from_me:
                    trusted += out.value
                else:
                    pending += out.value
            elif wtx.coinbase and tip_height - wtx.height < COINBASE_MATURITY:
                immature += out.value
            else:
                trusted += out.value
        return {"trusted": trusted, "untrusted_pending": pending, "immature": immature}

    def spendable(self, tip_height: int, min_conf: int = 0, include_unsafe: bool = False):
        """Coins coin selection may use: mature, not locked, confirmed or our own change."""
        for out, wtx in self.unspent():
            if (out.txid, out.n) in self.locked:
                continue
            if wtx.height is None:
                if min_conf > 0 or not (wtx.from_me or include_unsafe):
                    continue
            else:
                if tip_height - wtx.height + 1 < min_conf:
                    continue
                if wtx.coinbase and tip_height - wtx.height < COINBASE_MATURITY:
                    continue
            yield out, wtx


def new_hd_descriptors(now: int) -> tuple[str, list[dict]]:
    """A fresh seed's root tprv and Core-like default descriptor records (wpkh + tr,
    receive and change branches)."""
    root = bip32.HDKey.from_seed(os.urandom(32), version=NETWORK["xprv"])
    fp = root.my_fingerprint.hex()
    recs = []
    for purpose, fn in ((84, "wpkh"), (86, "tr")):
        acct = root.derive(f"m/{purpose}h/1h/0h")
        for internal in (False, True):
            body = f"{fn}([{fp}/{purpose}h/1h/0h]{acct.to_base58(NETWORK['xprv'])}/{int(internal)}/*)"
            recs.append(descriptor_record(body, active=True, internal=internal, rng=[0, DEFAULT_KEYPOOL - 1],
                                          next_index=0, timestamp=now))
    return root.to_base58(NETWORK["xprv"]), recs


def descriptor_record(body: str, *, active: bool, internal: bool, rng, next_index: int,
                      timestamp: int, label: str | None = None) -> dict:
    desc = dsc.parse(body)
    return {"id": dsc.add_checksum(dsc.public_string(desc)), "desc": body, "active": active,
            "internal": internal, "range": list(rng) if rng is not None else None,
            "next_index": next_index, "timestamp": timestamp, "label": label}


def output_type(desc: Descriptor) -> str:
    """Core's OutputType of a descriptor: bech32 (segwit v0), bech32m (taproot),
    p2sh-segwit or legacy."""
    kind = desc.scriptpubkey_type()
    if kind in ("p2wpkh", "p2wsh"):
        return "bech32"
    if kind == "p2tr":
        return "bech32m"
    if kind == "p2sh":
        return "p2sh-segwit"
    return "legacy"
