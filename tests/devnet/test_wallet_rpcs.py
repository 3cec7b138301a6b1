"""Wallet RPCs: imports and rescans, descriptors, funding errors, faucet sends, history."""
from __future__ import annotations

from decimal import Decimal

from embit.psbt import PSBT

from _devnet_kit import Key, NET, Descriptor, btc_to_sat, expect_rpc_error, fund, hd_cosigner, with_checksum


def test_importdescriptors_with_past_timestamp_rescans(node, rpc, faucet, mine):
    key = Key()
    txid, vout, value = fund(rpc, faucet, key.address, "0.33")
    mine(2)
    rpc.createwallet("late-watcher", True, True)
    w = node.rpc("late-watcher")
    assert w.listunspent() == []
    res = w.importdescriptors([{"desc": with_checksum(f"addr({key.address})"), "timestamp": 0,
                                "label": "old payment"}])
    assert res[0]["success"] is True
    [utxo] = w.listunspent()
    assert (utxo["txid"], utxo["vout"]) == (txid, vout) and btc_to_sat(utxo["amount"]) == value
    assert utxo["confirmations"] == 2 and utxo["label"] == "old payment"
    [entry] = w.listtransactions()
    assert entry["category"] == "receive" and entry["txid"] == txid
    tip = rpc.getblockcount()
    assert w.rescanblockchain(tip - 2) == {"start_height": tip - 2, "stop_height": tip}
    assert len(w.listunspent()) == 1                      # rescanning twice changes nothing


def test_importdescriptors_errors_like_core(node, rpc):
    rpc.createwallet("import-errors", True, True)
    w = node.rpc("import-errors")
    _, k = hd_cosigner()
    ranged = f"wsh(sortedmulti(1,{k}/0/*))"
    res = w.importdescriptors([
        {"desc": with_checksum(ranged), "timestamp": "now", "label": "no"},
        {"desc": ranged, "timestamp": "now"},
        {"desc": with_checksum(f"addr({Key().address})"), "timestamp": "now", "active": True},
        {"desc": with_checksum(ranged), "timestamp": "now", "range": [0, 5], "next_index": 9},
    ])
    assert [r["success"] for r in res] == [False] * 4
    assert [r["error"]["code"] for r in res] == [-8, -5, -8, -8]
    assert expect_rpc_error(w.importdescriptors, [{"desc": with_checksum(ranged)}]).code == -3


def test_listdescriptors_and_getaddressinfo(node, rpc):
    rpc.createwallet("desc-info", True, True)
    w = node.rpc("desc-info")
    root, k = hd_cosigner()
    receive = f"wsh(sortedmulti(1,{k}/0/*))"
    change = f"wsh(sortedmulti(1,{k}/1/*))"
    w.importdescriptors([{"desc": with_checksum(receive), "active": True, "range": [0, 9], "timestamp": "now"},
                         {"desc": with_checksum(change), "active": True, "internal": True, "range": [0, 9],
                          "timestamp": "now"}])
    listed = {d["desc"]: d for d in w.listdescriptors()["descriptors"]}
    assert set(listed) == {with_checksum(receive), with_checksum(change)}
    assert listed[with_checksum(change)]["internal"] is True and listed[with_checksum(change)]["active"] is True
    first, second = w.getnewaddress(), w.getnewaddress()
    desc = Descriptor.from_string(receive)
    assert [first, second] == [desc.derive(0).address(NET), desc.derive(1).address(NET)]
    change_address = w.getrawchangeaddress()
    assert change_address == Descriptor.from_string(change).derive(0).address(NET)
    info = w.getaddressinfo(change_address)
    assert info["ismine"] is True and info["ischange"] is True and "iswatchonly" in info
    assert info["parent_desc"] == with_checksum(change)
    assert w.getaddressinfo(Key().address)["ismine"] is False
    info = w.getwalletinfo()
    assert info["private_keys_enabled"] is False and info["descriptors"] is True


def test_walletcreatefundedpsbt_insufficient_funds_and_bad_address(node, rpc):
    rpc.createwallet("empty", True, True)
    w = node.rpc("empty")
    _, k = hd_cosigner()
    w.importdescriptors([{"desc": with_checksum(f"wpkh({k}/0/*)"), "active": True, "timestamp": "now"},
                         {"desc": with_checksum(f"wpkh({k}/1/*)"), "active": True, "internal": True,
                          "timestamp": "now"}])
    assert expect_rpc_error(w.walletcreatefundedpsbt, [], [{Key().address: 1}], 0, {"fee_rate": 2}).code == -4
    assert expect_rpc_error(w.walletcreatefundedpsbt, [], [{"bcrt1qbad": 1}]).code == -5


def test_faucet_funded_psbt_subtract_fee_and_processpsbt(rpc, faucet):
    dest = Key()
    funded = faucet.walletcreatefundedpsbt([], [{dest.address: Decimal("1")}], 0,
                                           {"fee_rate": 3, "subtractFeeFromOutputs": [0]})
    psbt = PSBT.from_string(funded["psbt"])
    paid = [o.value for o in psbt.tx.vout if o.script_pubkey.data == dest.spk.data]
    assert paid == [100_000_000 - btc_to_sat(funded["fee"])]
    processed = faucet.walletprocesspsbt(funded["psbt"])
    assert processed["complete"] is True
    txid = rpc.sendrawtransaction(processed["hex"])
    assert txid in rpc.getrawmempool()


def test_sendmany_and_wallet_history(rpc, faucet, mine):
    a, b = Key(), Key()
    txid = faucet.sendmany("", {a.address: Decimal("0.01"), b.address: Decimal("0.02")})
    rpc.syncwithvalidationinterfacequeue()
    tx = faucet.gettransaction(txid)
    assert tx["confirmations"] == 0 and tx["fee"] < 0
    sends = {d["address"]: d["amount"] for d in tx["details"] if d["category"] == "send"}
    assert sends == {a.address: Decimal("-0.01"), b.address: Decimal("-0.02")}
    mine(1)
    assert faucet.gettransaction(txid)["confirmations"] == 1
    recent = faucet.listtransactions("*", 50)
    assert any(e["txid"] == txid and e["category"] == "send" for e in recent)
    assert expect_rpc_error(faucet.sendtoaddress, a.address, 10 ** 6).code == -6


def test_wallet_lifecycle(node, rpc):
    rpc.createwallet("lifecycle")
    assert "lifecycle" in rpc.listwallets()
    assert expect_rpc_error(rpc.createwallet, "lifecycle").code == -4
    assert expect_rpc_error(rpc.loadwallet, "lifecycle").code == -35
    rpc.unloadwallet("lifecycle")
    assert "lifecycle" not in rpc.listwallets()
    assert expect_rpc_error(node.rpc("lifecycle").getbalances).code == -18
    rpc.loadwallet("lifecycle")
    assert node.rpc("lifecycle").getwalletinfo()["walletname"] == "lifecycle"
    assert expect_rpc_error(rpc.loadwallet, "never-created").code == -18


def test_send_psbtbumpfee_and_abandon(node, rpc, faucet):
    dest = Key()
    sent = faucet.send([{dest.address: Decimal("0.03")}], None, None, 2)
    assert sent["complete"] is True and sent["txid"] in rpc.getrawmempool()
    bumped = faucet.psbtbumpfee(sent["txid"])
    assert bumped["fee"] > bumped["origfee"]
    processed = faucet.walletprocesspsbt(bumped["psbt"])
    assert processed["complete"] is True
    replacement = rpc.sendrawtransaction(processed["hex"])
    rpc.syncwithvalidationinterfacequeue()
    assert sent["txid"] not in rpc.getrawmempool() and replacement in rpc.getrawmempool()
    assert expect_rpc_error(faucet.abandontransaction, replacement).code == -5   # still in mempool
    faucet.abandontransaction(sent["txid"])
    entries = [e for e in faucet.listtransactions("*", 100) if e["txid"] == sent["txid"]]
    assert entries and all(e["abandoned"] is True for e in entries if e["category"] == "send")


def test_single_key_address_info_has_hd_path(faucet):
    address = faucet.getnewaddress()
    info = faucet.getaddressinfo(address)
    assert info["ismine"] is True and info["solvable"] is True and info["ischange"] is False
    assert info["desc"].startswith("wpkh([") and info["parent_desc"].startswith("wpkh([")
    assert info["hdkeypath"].startswith("m/84h/1h/0h/0/")
    assert info["hdmasterfingerprint"] == info["desc"][6:14]
