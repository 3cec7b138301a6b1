"""The mempool: accepted transactions, their in-mempool links and BIP125 replacement.

Full-RBF like Core ≥ 28: any conflicting transaction may be replaced when the new one
pays a higher fee rate than each conflict, at least their total fee, plus the minimum
relay fee for its own size, evicting at most 100 transactions (conflicts and their
descendants). Fees in satoshis, sizes in vbytes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction

from devnet.chain import ChainState, Coin, MAX_BLOCK_WEIGHT
from devnet.errors import TxRejected, VERIFY_REJECTED
from devnet.txutil import TxInfo
from devnet import validation as v

MAX_REPLACEMENT_CANDIDATES = 100
DEFAULT_MAX_FEERATE = 10_000   # sat/vB (0.10 BTC/kvB, sendrawtransaction's default)


@dataclass
class Entry:
    ti: TxInfo
    fee: int
    time: int
    height: int                       # chain height when accepted
    coins: list[Coin]
    parents: set[str] = field(default_factory=set)
    children: set[str] = field(default_factory=set)
    removed_seq: int | None = None    # the mempool sequence its removal used (Core's R notification)

    @property
    def feerate(self) -> Fraction:
        return Fraction(self.fee, self.ti.vsize)


@dataclass
class Acceptance:
    """Result of a successful (or test-only) acceptance."""
    entry: Entry
    replaced: list[str]


class Mempool:
    def __init__(self):
        self.entries: dict[str, Entry] = {}
        self.spenders: dict[tuple[str, int], str] = {}
        self.sequence = 1                 # Core's CTxMemPool::m_sequence_number starts at 1

    def __contains__(self, txid: str) -> bool:
        return txid in self.entries

    def coin(self, outpoint: tuple[str, int]) -> Coin | None:
        e = self.entries.get(outpoint[0])
        if e is None or outpoint[1] >= len(e.ti.tx.vout):
            return None
        out = e.ti.tx.vout[outpoint[1]]
        return Coin(out.value, out.script_pubkey.data, v.MEMPOOL_HEIGHT, False)

    def descendants(self, txid: str) -> set[str]:
        seen, todo = set(), [txid]
        while todo:
            for c in self.entries[todo.pop()].children:
                if c not in seen:
                    seen.add(c)
                    todo.append(c)
        return seen

    def ancestors(self, txid: str) -> set[str]:
        seen, todo = set(), [txid]
        while todo:
            for p in self.entries[todo.pop()].parents:
                if p not in seen:
                    seen.add(p)
                    todo.append(p)
        return seen

    def add(self, entry: Entry) -> None:
        txid = entry.ti.txid
        for vin in entry.ti.tx.vin:
            op = (vin.txid.hex(), vin.vout)
            self.spenders[op] = txid
            if op[0] in self.entries:
                entry.parents.add(op[0])
                self.entries[op[0]].children.add(txid)
        self.entries[txid] = entry
        self.sequence += 1

    def remove(self, txid: str) -> Entry:
        e = self.entries.pop(txid)
        for vin in e.ti.tx.vin:
            op = (vin.txid.hex(), vin.vout)
            if self.spenders.get(op) == txid:
                del self.spenders[op]
        for p in e.parents:
            if p in self.entries:
                self.entries[p].children.discard(txid)
        for c in e.children:
            if c in self.entries:
                self.entries[c].parents.discard(txid)
        e.removed_seq = self.sequence     # every removal takes a number, mined ones too (Core)
        self.sequence += 1
        return e

    def remove_with_descendants(self, txid: str) -> list[Entry]:
        doomed = [txid] + sorted(self.descendants(txid))
        return [self.remove(t) for t in doomed if t in self.entries]

    def select(self, max_weight: int = MAX_BLOCK_WEIGHT - 4000) -> list[Entry]:
        """Transactions for the next block: highest fee rate first, parents before
        children, within `max_weight`."""
        pending = sorted(self.entries.values(), key=lambda e: e.feerate, reverse=True)
        chosen, included, weight = [], set(), 0
        progress = True
        while pending and progress:
            progress, rest = False, []
            for e in pending:
                if e.parents - included:
                    rest.append(e)
                    continue
                if weight + e.ti.weight > max_weight:
                    continue
                chosen.append(e)
                included.add(e.ti.txid)
                weight += e.ti.weight
                progress = True
            pending = rest
        return chosen

    def remove_for_block(self, txs: list[TxInfo]) -> list[Entry]:
        """Drop mined transactions and anything conflicting with them; returns the
        conflicts evicted (not the mined ones)."""
        evicted = []
        for t in txs:                     # Core's order: each mined one, then its conflicts
            if t.txid in self.entries:
                self.remove(t.txid)
            for vin in t.tx.vin:
                other = self.spenders.get((vin.txid.hex(), vin.vout))
                if other and other != t.txid and other in self.entries:
                    evicted += self.remove_with_descendants(other)
        return evicted


def accept(ti: TxInfo, chain: ChainState, pool: Mempool, *, max_feerate: int | None,
           test_only: bool = False, now: int | None = None) -> Acceptance:
    """Validate `ti` for the mempool and (unless test_only) add it, evicting what it
    replaces. Raises TxRejected with Core's code/reason; never changes state on failure."""
    if ti.txid in pool.entries:
        raise TxRejected(VERIFY_REJECTED, "txn-already-in-mempool")
    v.check_context_free(ti)
    v.check_standard(ti)
    height = chain.height + 1
    prev_mtp = chain.median_time_past()
    if not v.is_final(ti, height, prev_mtp):
        v.reject("non-final")
    conflicts = {pool.spenders[op] for op in ((i.txid.hex(), i.vout) for i in ti.tx.vin)
                 if op in pool.spenders}
    evicted: set[str] = set(conflicts)
    for c in conflicts:
        evicted |= pool.descendants(c)

    def lookup(op):
        if op[0] in evicted:
            raise TxRejected(VERIFY_REJECTED, "bad-txns-spends-conflicting-tx",
                             f"{ti.txid} spends conflicting transaction {op[0]}")
        coin = chain.utxos.get(op)
        return coin if coin is not None else pool.coin(op)

    fee, coins = v.check_inputs(ti, lookup, height, prev_mtp,
                                lambda h: chain.median_time_past(h), verify=False)
    if fee < ti.vsize * v.MIN_RELAY_FEERATE:
        v.reject("min relay fee not met", f"{fee} < {ti.vsize * v.MIN_RELAY_FEERATE}")
    if conflicts:
        _check_replacement(ti, fee, conflicts, evicted, pool, coins)
    failure = v.verify_scripts(ti, coins)
    if failure:
        raise TxRejected(VERIFY_REJECTED, failure)
    if max_feerate is not None and max_feerate > 0 and fee > max_feerate * ti.vsize:
        raise TxRejected(-25, "max-fee-exceeded",
                         "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)")
    entry = Entry(ti, fee, int(now if now is not None else time.time()), chain.height, coins)
    if test_only:
        return Acceptance(entry, sorted(evicted))
    replaced = []
    for c in conflicts:
        if c in pool.entries:
            replaced += [e.ti.txid for e in pool.remove_with_descendants(c)]
    pool.add(entry)
    return Acceptance(entry, replaced)


def _check_replacement(ti, fee, conflicts, evicted, pool, coins):
    if len(evicted) > MAX_REPLACEMENT_CANDIDATES:
        v.reject("too many potential replacements",
                 f"rejecting replacement {ti.txid}; too many potential replacements "
                 f"({len(evicted)} > {MAX_REPLACEMENT_CANDIDATES})")
    new_rate = Fraction(fee, ti.vsize)
    for c in conflicts:
        old = pool.entries[c]
        if new_rate <= old.feerate:
            v.reject("insufficient fee",
                     f"rejecting replacement {ti.txid}; new feerate {float(new_rate) * 1000 / 1e8:.8f} "
                     f"<= old feerate {float(old.feerate) * 1000 / 1e8:.8f}")
    old_fees = sum(pool.entries[t].fee for t in evicted)
    if fee < old_fees:
        v.reject("insufficient fee", f"rejecting replacement {ti.txid}, less fees than "
                 f"conflicting txs; {fee / 1e8:.8f} < {old_fees / 1e8:.8f}")
    if fee - old_fees < ti.vsize * v.MIN_RELAY_FEERATE:
        v.reject("insufficient fee", f"rejecting replacement {ti.txid}, not enough additional "
                 f"fees to relay; {(fee - old_fees) / 1e8:.8f} < {ti.vsize * v.MIN_RELAY_FEERATE / 1e8:.8f}")
    conflict_parents = set()
    for c in conflicts:
        conflict_parents |= {vin.txid.hex() for vin in pool.entries[c].ti.tx.vin}
    for vin, coin in zip(ti.tx.vin, coins):
        if coin.height == v.MEMPOOL_HEIGHT and vin.txid.hex() not in conflict_parents:
            v.reject("replacement-adds-unconfirmed",
                     f"replacement {ti.txid} adds unconfirmed input, idx 0")
