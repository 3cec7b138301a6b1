"""Core's "mempool sync" (test/functional/interface_zmq.py, test_mempool_sync) on the test
node: a `getrawmempool(false, true)` snapshot plus the `sequence` notifications numbered
at or above it rebuild the mempool exactly, and every number between the snapshot's and
the final one is used exactly once (by an A/R notification or by a transaction a block
took out of the mempool). The follower's feed mode (chain.feed) relies on both."""
from __future__ import annotations

from _zmq_kit import collect, subscribe
from _devnet_kit import Key, expect_rpc_error, fund, sign_p2wpkh


def test_snapshot_plus_notifications_is_the_mempool(node, rpc, faucet, mine):
    key, dest, miner = Key(), Key(), Key()
    a, b, c = (fund(rpc, faucet, key.address, "0.01") for _ in range(3))
    mine(1)
    sock = subscribe(node.zmq_url, (b"sequence",))
    try:
        snap = rpc.getrawmempool(False, True)
        view, base = set(snap["txids"]), snap["mempool_sequence"]
        t1 = rpc.sendrawtransaction(sign_p2wpkh(key, [a], [(dest.spk, a[2] - 1_000)]))
        t2 = rpc.sendrawtransaction(sign_p2wpkh(key, [b], [(dest.spk, b[2] - 1_000)]))
        t2b = rpc.sendrawtransaction(sign_p2wpkh(key, [b], [(dest.spk, b[2] - 10_000)]))   # replaces t2
        t3 = rpc.sendrawtransaction(sign_p2wpkh(key, [c], [(dest.spk, c[2] - 1_000)]))
        t3x = sign_p2wpkh(key, [c], [(dest.spk, c[2] - 2_000)])        # a conflict the mempool never saw
        block = rpc.generateblock(miner.address, [t1, t3x])["hash"]    # mines t1, evicts t3
        rpc.invalidateblock(block)                                     # t1 and t3x come back
        rpc.syncwithvalidationinterfacequeue()
        back = set(rpc.getrawmempool())
        rpc.reconsiderblock(block)                                     # and go again, mined
        rpc.syncwithvalidationinterfacequeue()
        final = rpc.getrawmempool(False, True)
        got = collect(sock, lambda g: sum(n.label == "C" and n.hash == block for n in g) >= 2, timeout=15.0)
    finally:
        sock.close()
    t3x_id = rpc.decoderawtransaction(t3x)["txid"]
    used, mined, seen_back = [], 0, None
    for n in got:
        if n.label in ("A", "R") and n.mempool_sequence >= base:
            (view.add if n.label == "A" else view.discard)(n.hash)
            used.append(n.mempool_sequence)
        elif n.label == "C":
            for txid in rpc.getblock(n.hash)["tx"][1:]:
                if txid in view:
                    view.discard(txid)
                    mined += 1
        elif n.label == "D" and n.hash == block:
            seen_back = "pending"
        if seen_back == "pending" and {t1, t3x_id} <= view:
            seen_back = set(view)
    labels = [(n.label, n.hash) for n in got if n.label in ("A", "R")]
    assert labels.index(("R", t2)) < labels.index(("A", t2b))          # a replacement: R, then A
    assert ("R", t3) in labels                                        # evicted by the block's conflict
    assert seen_back == back and {t1, t3x_id} <= back                 # the reorg's re-adds came as A
    assert view == set(final["txids"]) and t2b in view and t1 not in view and t3 not in view
    assert len(set(used)) == len(used) and all(base <= s < final["mempool_sequence"] for s in used)
    assert len(used) + mined == final["mempool_sequence"] - base


def test_verbose_results_cannot_carry_the_sequence(rpc):
    err = expect_rpc_error(rpc.getrawmempool, True, True)
    assert err.code == -8 and "Verbose results cannot contain mempool sequence values" in err.message
