"""ZMQ notifications as bitcoind's -zmqpubhashblock / -zmqpubsequence publish them
(the harness starts devnet and bitcoind with both on one endpoint): a mined block gives
`hashblock` with its hash and `sequence` … `C`; a transaction entering the mempool gives
`sequence` txid `A` with a mempool sequence number."""
from __future__ import annotations

from _zmq_kit import collect, subscribe
from _devnet_kit import Key, fund


def test_block_and_mempool_notifications(node, rpc, faucet, mine):
    sock = subscribe(node.zmq_url)
    try:
        block = mine(1)[0]
        got = collect(sock, lambda g: any(n.topic == "hashblock" and n.hash == block for n in g) and
                       any(n.topic == "sequence" and n.label == "C" and n.hash == block for n in g))
        assert any(n.topic == "hashblock" and n.hash == block for n in got)
        assert any(n.topic == "sequence" and n.label == "C" and n.hash == block for n in got)
        txid, _, _ = fund(rpc, faucet, Key().address, "0.01")
        got = collect(sock, lambda g: any(n.label == "A" and n.hash == txid for n in g))
        added = [n for n in got if n.label == "A" and n.hash == txid]
        assert added and isinstance(added[0].mempool_sequence, int)
        assert rpc.getrawmempool(False, True)["mempool_sequence"] > added[0].mempool_sequence
        mine(1)
    finally:
        sock.close()
