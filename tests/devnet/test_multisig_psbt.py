"""The Custos flow: a 2-of-3 wsh(sortedmulti) watch-only wallet, funded, spent with a PSBT
signed by two keys outside the node, finalized, broadcast and mined; plus the
rejections a broadcast can meet (double spend, already confirmed, bad signature)."""
from __future__ import annotations

from decimal import Decimal

import pytest
from embit.psbt import PSBT

from _devnet_kit import (Key, hd_cosigner, with_checksum, expect_rpc_error, btc_to_sat, Descriptor,
                         NET, Transaction)


@pytest.fixture(scope="module")
def multisig(node, rpc):
    """(wallet rpc, [root keys], receive Descriptor, change Descriptor)."""
    cosigners = [hd_cosigner() for _ in range(3)]
    keys = ",".join(k for _, k in cosigners)
    receive = f"wsh(sortedmulti(2,{','.join(k + '/0/*' for _, k in cosigners)}))"
    change = f"wsh(sortedmulti(2,{','.join(k + '/1/*' for _, k in cosigners)}))"
    assert keys
    rpc.createwallet("ms", True, True)
    w = node.rpc("ms")
    result = w.importdescriptors([
        {"desc": with_checksum(receive), "active": True, "internal": False, "range": [0, 20],
         "timestamp": "now"},
        {"desc": with_checksum(change), "active": True, "internal": True, "range": [0, 20],
         "timestamp": "now"},
    ])
    assert [r["success"] for r in result] == [True, True]
    return w, [root for root, _ in cosigners], Descriptor.from_string(receive), Descriptor.from_string(change)


@pytest.fixture(scope="module")
def spent_multisig(rpc, faucet, multisig, mine):
    """Fund the multisig, spend it via PSBT; returns a dict of what happened."""
    w, roots, receive, change = multisig
    address = w.getnewaddress()
    assert address == receive.derive(0).address(NET)
    info = w.getaddressinfo(address)
    assert info["ismine"] is True and info["solvable"] is True and info["ischange"] is False
    assert info["parent_desc"].split("#")[0] == receive.to_string().replace("'", "h")
    fund_txid = faucet.sendtoaddress(address, Decimal("1.5"))
    rpc.syncwithvalidationinterfacequeue()
    assert w.getbalances()["mine"]["untrusted_pending"] == Decimal("1.5")
    mine(1)
    assert w.getbalances()["mine"]["trusted"] == Decimal("1.5")
    [utxo] = w.listunspent()
    assert utxo["txid"] == fund_txid and utxo["confirmations"] == 1
    assert utxo["parent_descs"][0].split("#")[0] == receive.to_string().replace("'", "h")
    assert utxo["desc"].startswith("wsh(sortedmulti(2,[")
    assert "witnessScript" in utxo

    payee = Key()
    funded = w.walletcreatefundedpsbt([], [{payee.address: Decimal("0.4")}], 0, {"fee_rate": 5})
    assert funded["changepos"] in (0, 1)
    psbt = PSBT.from_string(funded["psbt"])
    inp = psbt.inputs[0]
    assert inp.witness_utxo is not None and inp.non_witness_utxo is not None
    assert inp.witness_script is not None and len(inp.bip32_derivations) == 3
    change_out = psbt.outputs[funded["changepos"]]
    assert change.owns(change_out), "change must be provable from the change descriptor"
    fee_sat = btc_to_sat(funded["fee"])
    assert fee_sat == inp.witness_utxo.value - sum(o.value for o in psbt.tx.vout)

    assert psbt.sign_with(roots[0]) == 1 and psbt.sign_with(roots[2]) == 1
    half = PSBT.from_string(funded["psbt"])
    half.sign_with(roots[0])
    assert rpc.finalizepsbt(half.to_string())["complete"] is False
    final = rpc.finalizepsbt(psbt.to_string())
    assert final["complete"] is True
    decoded = rpc.decodepsbt(psbt.to_string())
    assert btc_to_sat(decoded["fee"]) == fee_sat
    return {"wallet": w, "final_hex": final["hex"], "funded": funded, "fee": fee_sat,
            "payee": payee, "fund_txid": fund_txid, "roots": roots, "psbt": psbt}


def _corrupt_first_signature(raw_hex: str) -> str:
    tx = Transaction.parse(bytes.fromhex(raw_hex))
    items = tx.vin[0].witness.items
    sig = bytearray(items[1])
    sig[10] ^= 0x01                       # inside r: still DER, no longer valid
    items[1] = bytes(sig)
    return tx.serialize().hex()


def test_bad_signature_is_rejected_with_script_error(rpc, spent_multisig):
    exc = expect_rpc_error(rpc.sendrawtransaction, _corrupt_first_signature(spent_multisig["final_hex"]))
    assert exc.code == -26
    assert "script-verify-flag" in exc.message
    res = rpc.testmempoolaccept([_corrupt_first_signature(spent_multisig["final_hex"])])[0]
    assert res["allowed"] is False and "script-verify-flag" in res["reject-reason"]


def test_psbt_spend_is_accepted_and_mined(rpc, spent_multisig, mine):
    w = spent_multisig["wallet"]
    accept = rpc.testmempoolaccept([spent_multisig["final_hex"]])[0]
    assert accept["allowed"] is True and btc_to_sat(accept["fees"]["base"]) == spent_multisig["fee"]
    txid = rpc.sendrawtransaction(spent_multisig["final_hex"])
    assert rpc.sendrawtransaction(spent_multisig["final_hex"]) == txid    # idempotent in mempool
    rpc.syncwithvalidationinterfacequeue()
    assert txid in rpc.getrawmempool()
    entry = rpc.getmempoolentry(txid)
    assert btc_to_sat(entry["fees"]["base"]) == spent_multisig["fee"]
    assert entry["vsize"] * 5 <= spent_multisig["fee"] <= entry["vsize"] * 5 + 20
    block = mine(1)[0]
    assert txid in rpc.getblock(block)["tx"]
    [mined] = [t for t in rpc.getblock(block, 2)["tx"] if t["txid"] == txid]
    assert btc_to_sat(mined["fee"]) == spent_multisig["fee"]
    tx = w.gettransaction(txid)
    assert tx["confirmations"] == 1 and tx["blockhash"] == block
    assert btc_to_sat(-tx["fee"]) == spent_multisig["fee"]
    balance = w.getbalances()["mine"]["trusted"]
    assert btc_to_sat(balance) == btc_to_sat(Decimal("1.1")) - spent_multisig["fee"]
    spent_multisig["spend_txid"] = txid


def test_resending_a_confirmed_tx_is_already_in_utxo_set(rpc, spent_multisig):
    assert "spend_txid" in spent_multisig, "runs after the spend test"
    exc = expect_rpc_error(rpc.sendrawtransaction, spent_multisig["final_hex"])
    assert exc.code == -27


def test_double_spend_of_a_spent_input_is_rejected(rpc, spent_multisig):
    """Same input, different outputs, spent input already confirmed → -25."""
    assert "spend_txid" in spent_multisig, "runs after the spend test"
    psbt = PSBT.from_string(spent_multisig["funded"]["psbt"])
    psbt.outputs[0].value -= 1000
    for root in spent_multisig["roots"][:2]:
        psbt.sign_with(root)
    final = rpc.finalizepsbt(psbt.to_string())
    assert final["complete"] is True
    exc = expect_rpc_error(rpc.sendrawtransaction, final["hex"])
    assert exc.code == -25
    assert "missingorspent" in exc.message or "missing" in exc.message


def test_listsinceblock_reports_confirmations(rpc, faucet, multisig, mine):
    w = multisig[0]
    since = rpc.getbestblockhash()
    address = w.getnewaddress()
    txid = faucet.sendtoaddress(address, Decimal("0.25"))
    rpc.syncwithvalidationinterfacequeue()
    listed = w.listsinceblock(since)
    [entry] = [t for t in listed["transactions"] if t["txid"] == txid]
    assert entry["category"] == "receive" and entry["confirmations"] == 0
    assert entry["address"] == address and entry["amount"] == Decimal("0.25")
    assert listed["lastblock"] == since and listed["removed"] == []
    block = mine(1)[0]
    listed = w.listsinceblock(since)
    [entry] = [t for t in listed["transactions"] if t["txid"] == txid]
    assert entry["confirmations"] == 1 and entry["blockhash"] == block
    assert listed["lastblock"] == block
    later = w.listsinceblock(block)
    assert all(t["txid"] != txid for t in later["transactions"])
    deeper = w.listsinceblock(since, 2)
    assert deeper["lastblock"] == since


def test_combine_analyze_and_decode_psbt(rpc, spent_multisig):
    unsigned = spent_multisig["funded"]["psbt"]
    analysis = rpc.analyzepsbt(unsigned)
    assert analysis["next"] == "signer"
    assert analysis["inputs"][0]["has_utxo"] is True and analysis["inputs"][0]["is_final"] is False
    assert btc_to_sat(analysis["fee"]) == spent_multisig["fee"]
    halves = []
    for root in spent_multisig["roots"][1:]:
        p = PSBT.from_string(unsigned)
        assert p.sign_with(root) == 1
        halves.append(p.to_string())
    combined = rpc.combinepsbt(halves)
    decoded = rpc.decodepsbt(combined)
    assert len(decoded["inputs"][0]["partial_signatures"]) == 2
    assert len(decoded["inputs"][0]["bip32_derivs"]) == 3
    assert decoded["inputs"][0]["witness_script"]["type"] == "multisig"
    assert decoded["inputs"][0]["witness_script"]["asm"].endswith("3 OP_CHECKMULTISIG")
    assert decoded["tx"]["txid"] == PSBT.from_string(unsigned).tx.txid().hex()
    final = rpc.finalizepsbt(combined)
    assert final["complete"] is True
    assert rpc.decoderawtransaction(final["hex"])["txid"] == decoded["tx"]["txid"]
