"""Mempool policy and consensus rejections: RBF, immature coinbase, relative timelocks."""
from __future__ import annotations

from decimal import Decimal

from embit.descriptor import Descriptor

from _devnet_kit import (Key, NET, Transaction, TransactionInput, TransactionOutput, Witness,
                         btc_to_sat, expect_rpc_error, fund, segwit_sig, sign_p2wpkh, with_checksum)


def test_rbf_replacement_accepted_and_too_cheap_refused(rpc, faucet, mine):
    key, dest = Key(), Key()
    txid, vout, value = fund(rpc, faucet, key.address, "0.5")
    mine(1)
    prevout = [(txid, vout, value)]
    original = sign_p2wpkh(key, prevout, [(dest.spk, value - 1_000)])
    original_txid = rpc.sendrawtransaction(original)
    cheaper = sign_p2wpkh(key, prevout, [(dest.spk, value - 900)])
    exc = expect_rpc_error(rpc.sendrawtransaction, cheaper)
    assert exc.code == -26 and "insufficient fee" in exc.message
    same_fee = sign_p2wpkh(key, prevout, [(dest.spk, value - 1_005)])   # +5 sat < any relay increment
    exc = expect_rpc_error(rpc.sendrawtransaction, same_fee)
    assert exc.code == -26 and "insufficient fee" in exc.message
    assert original_txid in rpc.getrawmempool()
    replacement = sign_p2wpkh(key, prevout, [(dest.spk, value - 5_000)])
    replacement_txid = rpc.sendrawtransaction(replacement)
    pool = rpc.getrawmempool()
    assert replacement_txid in pool and original_txid not in pool
    block = mine(1)[0]
    assert replacement_txid in rpc.getblock(block)["tx"]


def test_replacement_evicts_descendants(rpc, faucet, mine):
    key, mid, dest = Key(), Key(), Key()
    txid, vout, value = fund(rpc, faucet, key.address, "0.3")
    mine(1)
    parent_hex = sign_p2wpkh(key, [(txid, vout, value)], [(mid.spk, value - 1_000)])
    parent = rpc.sendrawtransaction(parent_hex)
    child = rpc.sendrawtransaction(sign_p2wpkh(mid, [(parent, 0, value - 1_000)], [(dest.spk, value - 2_000)]))
    assert rpc.getmempoolentry(parent)["descendantcount"] == 2
    replacement = rpc.sendrawtransaction(sign_p2wpkh(key, [(txid, vout, value)], [(dest.spk, value - 10_000)]))
    pool = rpc.getrawmempool()
    assert replacement in pool and parent not in pool and child not in pool


def test_wallet_bumpfee_replaces(rpc, faucet):
    txid = faucet.sendtoaddress(Key().address, Decimal("0.2"), "", "", False, True)
    rpc.syncwithvalidationinterfacequeue()
    bumped = faucet.bumpfee(txid)
    assert bumped["fee"] > bumped["origfee"]
    pool = rpc.getrawmempool()
    assert bumped["txid"] in pool and txid not in pool
    rpc.syncwithvalidationinterfacequeue()
    old = faucet.gettransaction(txid)
    assert old.get("replaced_by_txid") == bumped["txid"]


def test_immature_coinbase_spend_refused(rpc, mine):
    key, dest = Key(), Key()
    block = rpc.generatetoaddress(1, key.address)[0]
    coinbase = rpc.getblock(block, 2)["tx"][0]
    out = coinbase["vout"][0]
    assert out["scriptPubKey"]["address"] == key.address
    value = btc_to_sat(out["value"])
    raw = sign_p2wpkh(key, [(coinbase["txid"], 0, value)], [(dest.spk, value - 10_000)])
    exc = expect_rpc_error(rpc.sendrawtransaction, raw)
    assert exc.code == -26 and "premature-spend-of-coinbase" in exc.message


def test_value_out_above_value_in_refused(rpc, faucet, mine):
    key, dest = Key(), Key()
    txid, vout, value = fund(rpc, faucet, key.address, "0.01")
    mine(1)
    exc = expect_rpc_error(rpc.sendrawtransaction, sign_p2wpkh(key, [(txid, vout, value)], [(dest.spk, value + 1)]))
    assert exc.code == -26 and "in-belowout" in exc.message


def test_relative_timelock_miniscript_refused_then_accepted(rpc, faucet, mine):
    """wsh(or_d(multi(2,A,B,C),and_v(v:pkh(R),older(N)))) spent by R alone."""
    delay = 5
    a, b, c, r = Key(), Key(), Key(), Key()
    body = (f"wsh(or_d(multi(2,{a.pub.sec().hex()},{b.pub.sec().hex()},{c.pub.sec().hex()}),"
            f"and_v(v:pkh({r.pub.sec().hex()}),older({delay}))))")
    desc = Descriptor.from_string(body)
    address = desc.address(NET)
    assert rpc.deriveaddresses(with_checksum(body)) == [address]
    witness_script = desc.witness_script()
    txid, vout, value = fund(rpc, faucet, address, "0.7")
    mine(1)
    funded_height = rpc.getblockcount()

    def recovery_spend(sequence):
        tx = Transaction(version=2, vin=[TransactionInput(bytes.fromhex(txid), vout, sequence=sequence)],
                         vout=[TransactionOutput(value - 2_000, Key().spk)], locktime=0)
        sig = segwit_sig(r.priv, tx, 0, witness_script, value)
        tx.vin[0].witness = Witness([sig, r.pub.sec(), b"", b"", b"", witness_script.data])
        return tx.serialize().hex()

    raw = recovery_spend(delay)
    exc = expect_rpc_error(rpc.sendrawtransaction, raw)
    assert exc.code == -26 and "non-BIP68-final" in exc.message
    assert rpc.testmempoolaccept([raw])[0]["reject-reason"] == "non-BIP68-final"
    mine(funded_height + delay - 2 - rpc.getblockcount())       # one block short
    exc = expect_rpc_error(rpc.sendrawtransaction, raw)
    assert exc.code == -26 and "non-BIP68-final" in exc.message
    # a sequence below the script's older(N) fails inside the script, not on BIP68
    exc = expect_rpc_error(rpc.sendrawtransaction, recovery_spend(delay - 1))
    assert exc.code == -26 and "script-verify-flag" in exc.message
    mine(1)
    spend_txid = rpc.sendrawtransaction(raw)
    assert spend_txid in rpc.getrawmempool()
    assert spend_txid in rpc.getblock(mine(1)[0])["tx"]


def test_missing_inputs(rpc):
    key, dest = Key(), Key()
    raw = sign_p2wpkh(key, [("ab" * 32, 0, 100_000)], [(dest.spk, 90_000)])
    exc = expect_rpc_error(rpc.sendrawtransaction, raw)
    assert exc.code == -25
    assert rpc.testmempoolaccept([raw])[0]["reject-reason"] == "missing-inputs"


def test_dust_output_refused(rpc, faucet, mine):
    key, dest = Key(), Key()
    txid, vout, value = fund(rpc, faucet, key.address, "0.01")
    mine(1)
    raw = sign_p2wpkh(key, [(txid, vout, value)], [(dest.spk, value - 5_000), (dest.spk, 100)])
    exc = expect_rpc_error(rpc.sendrawtransaction, raw)
    assert exc.code == -26 and exc.message.startswith("dust")



def test_fee_above_maxfeerate_refused_by_sendrawtransaction_alone(rpc, faucet, mine):
    """Core's sendrawtransaction checks maxfeerate (default 0.10 BTC/kvB) itself:
    TransactionError::MAX_FEE_EXCEEDED → -25 with Core's message; testmempoolaccept
    names it max-fee-exceeded; maxfeerate=0 lifts the cap."""
    key, dest = Key(), Key()
    txid, vout, value = fund(rpc, faucet, key.address, "0.1")
    mine(1)
    raw = sign_p2wpkh(key, [(txid, vout, value)], [(dest.spk, value // 2)])   # ~45,000 sat/vB
    exc = expect_rpc_error(rpc.sendrawtransaction, raw)
    assert exc.code == -25
    assert exc.message == "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)"
    assert rpc.testmempoolaccept([raw])[0]["reject-reason"] == "max-fee-exceeded"
    assert rpc.sendrawtransaction(raw, 0) in rpc.getrawmempool()
