"""chain.rpc.broadcast: one sendrawtransaction round trip gives every answer the old
testmempoolaccept + sendrawtransaction pair gave (same assertions on devnet and Core)."""
from __future__ import annotations

import pytest

from _devnet_kit import Key, expect_rpc_error, fund, sign_p2wpkh
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


# -- re-broadcasting what the node already has (Core: node/transaction.cpp BroadcastTransaction) --
def _resigned(key: Key, prev, outputs_hex: str) -> str:
    """The same transaction (same txid) with another valid signature (other nonce entropy):
    a different witness, so a different wtxid."""
    from embit import hashes as h
    from embit.script import Script, Witness
    from embit.transaction import SIGHASH, Transaction
    from embit.util import secp256k1
    tx = Transaction.from_string(outputs_hex)
    code = Script(b"\x76\xa9\x14" + h.hash160(key.pub.sec()) + b"\x88\xac")
    digest = tx.sighash_segwit(0, code, prev[2], SIGHASH.ALL)
    sig = secp256k1.ecdsa_signature_serialize_der(
        secp256k1.ecdsa_sign(digest, key.priv.secret, None, b"\x07" * 32)) + bytes([SIGHASH.ALL])
    tx.vin[0].witness = Witness([sig, key.pub.sec()])
    return tx.serialize().hex()


def test_same_txid_other_witness_in_the_mempool_answers_the_txid_and_keeps_the_first(rpc, faucet, mine):
    """Core finds the txid in the mempool and only re-announces the mempool's own copy."""
    key, prev, raw = _spend(rpc, faucet, mine)
    other = _resigned(key, prev, raw)
    assert other != raw and txid_of(other) == txid_of(raw)
    txid = rpc.sendrawtransaction(raw)
    wtxid = rpc.getmempoolentry(txid)["wtxid"]
    assert rpc.sendrawtransaction(other) == txid
    assert rpc.getmempoolentry(txid)["wtxid"] == wtxid


def test_in_the_mempool_is_not_fee_checked_again(rpc, faucet, mine):
    """The mempool lookup comes before the maxfeerate check: a known transaction answers
    its txid even with a maxfeerate it exceeds (a fresh one is refused -25)."""
    _key, _prev, raw = _spend(rpc, faucet, mine, fee=50_000)
    txid = rpc.sendrawtransaction(raw)
    assert rpc.sendrawtransaction(raw, 0.00001) == txid
    _key2, _prev2, fresh = _spend(rpc, faucet, mine, fee=50_000)
    exc = expect_rpc_error(rpc.sendrawtransaction, fresh, 0.00001)
    assert exc.code == -25


def test_confirmed_with_every_output_spent_is_missing_inputs_not_already_in_chain(rpc, faucet, mine):
    """Core recognises a confirmed transaction only by an unspent output of it (-27); once
    every output is spent, re-sending it meets its own spent inputs: -25
    bad-txns-inputs-missingorspent (chain.rpc.broadcast cannot tell it from a double spend)."""
    a, b = Key(), Key()
    prev = fund(rpc, faucet, a.address, "0.01")
    mine(1)
    first = sign_p2wpkh(a, [prev], [(b.spk, prev[2] - 1_000)])
    txid = rpc.sendrawtransaction(first)
    mine(1)
    assert expect_rpc_error(rpc.sendrawtransaction, first).code == -27      # its output is unspent
    rpc.sendrawtransaction(sign_p2wpkh(b, [(txid, 0, prev[2] - 1_000)], [(Key().spk, prev[2] - 2_000)]))
    mine(1)
    exc = expect_rpc_error(rpc.sendrawtransaction, first)
    assert exc.code == -25 and "missingorspent" in exc.message
