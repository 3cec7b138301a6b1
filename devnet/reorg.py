"""Reorganizations, like Bitcoin Core's: the active chain is the valid branch with the
most work, and among equal work the one with the lowest sequence id (received first,
or made precious) — Core's CBlockIndexWorkComparator.

- `invalidate(node, hash)`: the block and its descendants become invalid; if it was on
  the active chain, the chain is disconnected down to its parent and the best valid
  branch is activated (mining then extends that tip: a fork);
- `reconsider(node, hash)`: clears invalidity of the block, its ancestors and its
  descendants, then activates the best branch;
- `precious(node, hash)`: the block is treated as received before any other block of
  the same work.

Transactions of disconnected blocks go back to the mempool when they are still valid
(and not mined on the new branch); mempool entries whose inputs vanished are evicted.
Everything runs under the node lock (RPC handlers hold it).
"""
from __future__ import annotations

from devnet.chain import BlockIndex
from devnet.errors import RPCFailure, TxRejected


def _valid(node, bi: BlockIndex) -> bool:
    b = bi
    while b is not None:
        if b.hash in node.invalid:
            return False
        if node.chain.is_active(b):
            return True
        b = node.chain.parent(b)
    return True


def _better(a: BlockIndex, b: BlockIndex) -> bool:
    return (a.chainwork, -a.seq) > (b.chainwork, -b.seq)


def _best(node) -> BlockIndex:
    best = node.chain.tip
    for bi in node.chain.by_hash.values():
        if _better(bi, best) and _valid(node, bi):
            best = bi
    return best


def disconnect_tip(node) -> BlockIndex:
    chain = node.chain
    bi = chain.tip
    node.store.disconnect_block(bi.height, bi.hash, bi.block.serialize(), bi.seq)
    chain.disconnect_tip()
    node.block_feerates.pop()
    node.block_fees.pop()
    for w in node.wallets.values():
        for pos, t in enumerate(bi.block.txs):
            w.unconfirm(t.txid, coinbase=pos == 0)
    if node.zmq is not None:
        node.zmq.block_disconnected(bi.hash)
    return bi


def activate_best(node, disconnected: list[BlockIndex]) -> None:
    """Switch to the best valid branch (appends what it disconnects)."""
    chain = node.chain
    best = _best(node)
    if best is chain.tip:
        return
    path, b = [], best
    while not chain.is_active(b):
        path.append(b)
        b = chain.parent(b)
    while chain.tip is not b:
        disconnected.append(disconnect_tip(node))
    for bi in reversed(path):
        node._connect(bi.block)


def readd(node, disconnected: list[BlockIndex]) -> None:
    """Transactions of disconnected blocks back to the mempool (oldest block first);
    then evict mempool entries that spend coins which no longer exist."""
    chain, now = node.chain, node.now()
    for bi in reversed(disconnected):
        for t in bi.block.txs[1:]:
            if t.txid in chain.txindex or t.txid in node.mempool:
                continue
            try:
                node._accept(t, max_feerate=None, when=now)
            except (RPCFailure, TxRejected):
                for w in node.wallets.values():
                    w.deactivate(t.txid)
    pool = node.mempool
    doomed = []
    for txid, e in list(pool.entries.items()):
        for vin in e.ti.tx.vin:
            op = (vin.txid.hex(), vin.vout)
            parent = pool.entries.get(op[0])
            if op not in chain.utxos and (parent is None or op[1] >= len(parent.ti.tx.vout)):
                doomed.append(txid)
                break
    for txid in doomed:
        if txid in pool.entries:
            removed = pool.remove_with_descendants(txid)
            gone = [e.ti.txid for e in removed]
            node.store.mempool_remove(gone)
            if node.zmq is not None:     # Core: removeForReorg, reason REORG → R
                for e in removed:
                    node.zmq.tx_removed(e.ti.txid, e.removed_seq)
            for w in node.wallets.values():
                for g in gone:
                    w.deactivate(g)


def _lookup(node, block_hash: str) -> BlockIndex:
    bi = node.chain.by_hash.get(block_hash)
    if bi is None:
        raise RPCFailure(-5, "Block not found")
    return bi


def invalidate(node, block_hash: str) -> None:
    bi = _lookup(node, block_hash)
    if bi.height == 0:
        raise RPCFailure(-1, "Cannot invalidate the genesis block")  # devnet: Core would fail too
    node.invalid.add(bi.hash)
    node.store.set_flags(bi.hash, invalid=True)
    disconnected: list[BlockIndex] = []
    if node.chain.is_active(bi):
        while node.chain.height >= bi.height:
            disconnected.append(disconnect_tip(node))
    activate_best(node, disconnected)
    readd(node, disconnected)


def _descends(node, bi: BlockIndex, ancestor: BlockIndex) -> bool:
    b = bi
    while b is not None and b.height >= ancestor.height:
        if b is ancestor:
            return True
        b = node.chain.parent(b)
    return False


def reconsider(node, block_hash: str) -> None:
    bi = _lookup(node, block_hash)
    cleared = set()
    b = bi
    while b is not None:                    # ancestors
        cleared.add(b.hash)
        b = node.chain.parent(b)
    for other in node.chain.by_hash.values():    # descendants
        if other.hash in node.invalid and _descends(node, other, bi):
            cleared.add(other.hash)
    for h in cleared & node.invalid:
        node.invalid.discard(h)
        node.store.set_flags(h, invalid=False)
    disconnected: list[BlockIndex] = []
    activate_best(node, disconnected)
    readd(node, disconnected)


def precious(node, block_hash: str) -> None:
    bi = _lookup(node, block_hash)
    if bi.chainwork < node.chain.tip.chainwork:
        return
    bi.seq = node.reverse_seq
    node.reverse_seq -= 1
    node.store.set_flags(bi.hash, seq=bi.seq)
    disconnected: list[BlockIndex] = []
    activate_best(node, disconnected)
    readd(node, disconnected)


def load_side_blocks(node) -> None:
    """On start: know the stored side-branch blocks and the invalid/precious flags."""
    from devnet.chain import Block
    pending = [Block.parse(raw) for _h, raw in node.store.side_blocks()]
    progress = True
    while pending and progress:
        progress, rest = False, []
        for blk in pending:
            if blk.hash in node.chain.by_hash:
                progress = True
                continue
            if blk.prev[::-1].hex() in node.chain.by_hash:
                node.chain.add_side(blk)
                progress = True
            else:
                rest.append(blk)
        pending = rest
    for h, (invalid, seq) in node.store.flags().items():
        if invalid:
            node.invalid.add(h)
        bi = node.chain.by_hash.get(h)
        if seq is not None and bi is not None:
            bi.seq = seq
            node.reverse_seq = min(node.reverse_seq, seq - 1)
