"""chain.rpc.broadcast: one sendrawtransaction round trip gives every answer the old
testmempoolaccept + sendrawtransaction pair gave (same assertions on devnet and Core)."""
from __future__ import annotations

import pytest

from _devnet_kit import Key, fund, sign_p2wpkh
from chain.errors import ChainRejected
from chain.rpc import BitcoinRPC, broadcast, txid_of


class CountingRPC(BitcoinRPC):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.methods = []

    def call(self, method, *params):
        self.methods.append(method)
        return super().call(method, *params)


@pytest.fixture
def counting(node):
    return CountingRPC(node.url, node.user, node.password)


def _spend(rpc, faucet, mine, fee=1_000):
    key, dest = Key(), Key()
    txid, vout, value = fund(rpc, faucet, key.address, "0.01")
    mine(1)
    return key, (txid, vout, value), sign_p2wpkh(key, [(txid, vout, value)], [(dest.spk, value - fee)])


def test_accepted_then_idempotent_in_mempool_and_in_chain_with_one_call_each(rpc, faucet, mine, counting):
    _key, _prev, raw = _spend(rpc, faucet, mine)
    txid = broadcast(counting, raw)
    assert txid == txid_of(raw) and txid in rpc.getrawmempool()
    assert counting.methods == ["sendrawtransaction"]
    assert broadcast(counting, raw) == txid                 # already in the mempool: its txid
    mine(1)
    assert broadcast(counting, raw) == txid                 # already in the chain (-27): its txid
    assert counting.methods == ["sendrawtransaction"] * 3


def test_refusals_keep_cores_code_and_reason(rpc, faucet, mine, counting):
    key, prev, raw = _spend(rpc, faucet, mine)
    broadcast(counting, raw)
    mine(1)
    double = sign_p2wpkh(key, [prev], [(Key().spk, prev[2] - 2_000)])
    with pytest.raises(ChainRejected) as spent:
        broadcast(counting, double)
    assert spent.value.code == -25 and "missingorspent" in spent.value.message
    _key2, prev2, _raw2 = _spend(rpc, faucet, mine)
    too_cheap = sign_p2wpkh(_key2, [prev2], [(Key().spk, prev2[2] - 10)])
    with pytest.raises(ChainRejected) as cheap:
        broadcast(counting, too_cheap)
    assert cheap.value.code == -26 and "min relay fee not met" in cheap.value.message
