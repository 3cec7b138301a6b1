"""Chain-dependent account behaviour: RBF bump, the decaying template's timelocked
recovery path, watch-only accounts, the block follower, restarts, and secrecy of the
cosigner key (through the API, against devnet or a real bitcoind)."""
from __future__ import annotations

import base64
from decimal import Decimal

import pytest
from embit.psbt import PSBT, DerivationPath
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput
from sqlalchemy import MetaData, select

from chain.errors import ChainRejected
from chain.rpc import btc_to_sat
from client.phone import PhoneWallet
from client.sdk import ApiError
from tests.api.accounts_kit import create, fund
from tests.conftest import flask_transport


def spend_and_sign(device, phone, account, outputs, **opts):
    spend = device.call("POST", f"/v1/accounts/{account['account_id']}/spends", {"outputs": outputs, **opts})
    psbt = phone.verify_spend(account, spend, outputs)
    return spend, device.call("POST", f"/v1/spends/{spend['spend_id']}/signatures", {"psbt": phone.sign(psbt)})


def test_gap_limit_moves_once_an_address_is_used(device, chain_node, mine):
    account = create(device, PhoneWallet())
    aid = account["account_id"]
    issued = [device.call("POST", f"/v1/accounts/{aid}/addresses") for _ in range(20)]
    chain_node.faucet.sendtoaddress(issued[4]["address"], Decimal("0.01"))
    mine(1)
    assert device.call("POST", f"/v1/accounts/{aid}/addresses")["index"] == 20


def test_rbf_bump_replaces_the_spend(device, chain_node, mine):
    phone = PhoneWallet()
    account = create(device, phone)
    fund(chain_node, mine, device, account, "0.3")
    outputs = [{"address": chain_node.faucet.getnewaddress(), "amount_sat": 5_000_000}]
    first, done = spend_and_sign(device, phone, account, outputs, fee_rate_sat_vb=2)
    assert done["state"] == "broadcast"
    bumped = device.call("POST", f"/v1/spends/{first['spend_id']}/bump", {"fee_rate": 10})
    assert bumped["replaces"] == first["spend_id"] and bumped["fee_sat"] > first["fee_sat"]
    signed = phone.sign(PSBT.from_string(bumped["psbt"]))
    replacement = device.call("POST", f"/v1/spends/{bumped['spend_id']}/signatures", {"psbt": signed})
    assert replacement["state"] == "broadcast" and replacement["txid"] != done["txid"]
    mempool = chain_node.rpc().getrawmempool()
    assert replacement["txid"] in mempool and done["txid"] not in mempool
    assert device.call("GET", f"/v1/spends/{first['spend_id']}")["state"] == "replaced"
    assert device.call("GET", f"/v1/spends/{first['spend_id']}")["replaced_by"] == bumped["spend_id"]
    mine(1)


def test_decaying_template_recovery_key_alone_only_after_the_timelock(device, chain_node, mine, chain_settings):
    decay = 5
    phone = PhoneWallet()
    account = create(device, phone, template="2of3_decaying", decay_blocks=decay)
    addr, txid = fund(chain_node, mine, device, account, "0.1")
    paid = chain_node.rpc().getrawtransaction(txid, True)
    utxo = next({"vout": o["n"], "amount": o["value"]} for o in paid["vout"]
                if o["scriptPubKey"].get("address") == addr["address"])
    amount = btc_to_sat(utxo["amount"])

    from cosigner import descriptors as d
    from cosigner.finalize import finalize
    from cosigner.psbt import AccountView, InputInfo
    keys = [d.parse_key(k["xpub"], k["origin"], "regtest") for k in
            (account["platform_key"], account["recovery_key"], account["server_key"])]
    recv = d.AccountDescriptors(account["receive_descriptor"], account["change_descriptor"], account["template"])
    view = AccountView("regtest", "2of3_decaying", *keys, *recv.parsed())
    index = addr["index"]
    dest = Script.from_address(chain_node.faucet.getnewaddress())
    tx = Transaction(version=2, vin=[TransactionInput(bytes.fromhex(txid), utxo["vout"], sequence=decay)],
                     vout=[TransactionOutput(amount - 2_000, dest)])
    psbt = PSBT(tx)
    src = view.receive.derive(index)
    psbt.inputs[0].witness_utxo = TransactionOutput(amount, src.script_pubkey())
    psbt.inputs[0].witness_script = src.witness_script()
    rec_root = phone.recovery.root
    path = [int(p[:-1]) + 0x80000000 for p in keys[1].path.split("/")] + [2, index]
    psbt.inputs[0].bip32_derivations[rec_root.derive(path).to_public().key] = DerivationPath(rec_root.my_fingerprint, path)
    assert psbt.sign_with(rec_root) == 1
    raw = finalize(psbt, (InputInfo(txid, utxo["vout"], amount, 0, index),), view, recovery_path=True).hex()
    with pytest.raises(ChainRejected) as info:  # 1 confirmation < 5 blocks
        chain_node.rpc().sendrawtransaction(raw)
    assert info.value.code == -26 and "non-BIP68-final" in info.value.message
    mine(decay - 1)
    sent = chain_node.rpc().sendrawtransaction(raw)
    assert sent == tx.txid().hex()
    mine(1)


def test_watch_only_account_tracks_payments_and_refuses_spends(device, chain_node, mine):
    addresses = [chain_node.faucet.getnewaddress() for _ in range(0)]  # none of the faucet's own
    other = PhoneWallet()
    # a watch-only view of someone else's single-sig addresses: make two fresh ones
    from embit.bip32 import HDKey
    from embit.networks import NETWORKS
    import os
    root = HDKey.from_seed(os.urandom(32), version=NETWORKS["regtest"]["xprv"])
    from embit.script import p2wpkh
    addresses = [p2wpkh(root.derive(f"m/84h/1h/0h/0/{i}").key).address(NETWORKS["regtest"]) for i in range(2)]
    account = device.call("POST", "/v1/accounts", {"name": "watch", "network": "regtest", "template": "watch_only",
                                                   "addresses": addresses})
    assert account["template"] == "watch_only" and account["server_key"] is None
    chain_node.faucet.sendtoaddress(addresses[1], Decimal("0.25"))
    mine(1)
    bal = device.call("GET", f"/v1/accounts/{account['account_id']}/balance")
    assert bal["confirmed"] == 25_000_000
    history = device.call("GET", f"/v1/accounts/{account['account_id']}/transactions")
    assert [(t["direction"], t["amount_sat"], t["status"]) for t in history["transactions"]] == \
        [("receive", 25_000_000, "confirmed")]
    with pytest.raises(ApiError) as info:
        device.call("POST", f"/v1/accounts/{account['account_id']}/spends",
                    {"outputs": [{"address": chain_node.faucet.getnewaddress(), "amount_sat": 10_000}]})
    assert (info.value.status, info.value.code) == (409, "watch_only_account")
    del other


def test_follower_moves_receive_and_spend_to_deep(device, chain_node, mine, chain_app, chain_settings):
    from chain.model import AccountTx
    from config.bootstrap import chain_follower
    from store.session import session_scope
    phone = PhoneWallet()
    account = create(device, phone)
    aid = account["account_id"]
    notes = []
    follower = chain_follower(chain_settings, notify=lambda s, dev, kind, now: notes.append(kind))
    addr = device.call("POST", f"/v1/accounts/{aid}/addresses")["address"]
    chain_node.faucet.sendtoaddress(addr, Decimal("0.4"))
    assert follower.run_once().mempool_new >= 1 and notes == ["receive"]
    follower.run_once()
    assert notes == ["receive"]  # a second pass changes nothing
    assert device.call("GET", f"/v1/accounts/{aid}/balance")["untrusted_pending"] == 40_000_000
    mine(1)
    _, done = spend_and_sign(device, phone, account, [{"address": chain_node.faucet.getnewaddress(),
                                                        "amount_sat": 1_000_000}], fee_rate_sat_vb=3)
    follower.run_once()
    chain_node.rpc().generatetoaddress(1, chain_node.faucet.getnewaddress())
    follower.run_once()
    assert device.call("GET", f"/v1/spends/{done['spend_id']}")["state"] == "confirmed"
    assert "spend_confirmed" in notes
    chain_node.rpc().generatetoaddress(5, chain_node.faucet.getnewaddress())
    follower.run_once()
    got = device.call("GET", f"/v1/spends/{done['spend_id']}")
    assert got["state"] == "deep" and got["confirmations"] >= 6
    with session_scope(chain_settings.database_url) as s:
        states = dict(s.execute(select(AccountTx.txid, AccountTx.state).where(AccountTx.account_id == aid)).all())
    assert states[done["txid"]] == "deep" and list(states.values()) == ["deep", "deep"]
    history = device.call("GET", f"/v1/accounts/{aid}/transactions")["transactions"]
    assert [t["direction"] for t in history] == ["send", "receive"]
    assert history[0]["amount_sat"] == 1_000_000 and history[0]["fee_sat"] == done["fee_sat"]
    assert history[0]["block_height"] == history[1]["block_height"] + 1


def test_restart_between_steps_loses_nothing(device, chain_node, mine, app_factory, chain_settings):
    phone = PhoneWallet()
    account = create(device, phone)
    fund(chain_node, mine, device, account, "0.2")
    outputs = [{"address": chain_node.faucet.getnewaddress(), "amount_sat": 2_000_000}]
    spend = device.call("POST", f"/v1/accounts/{account['account_id']}/spends", {"outputs": outputs})
    # "restart": a brand-new app process state (new engine, new adapters) on the same DB and node
    fresh = app_factory(chain_settings)
    device.transport = flask_transport(fresh)
    assert device.call("GET", f"/v1/accounts/{account['account_id']}/balance")["confirmed"] == 20_000_000
    psbt = phone.verify_spend(account, spend, outputs)
    done = device.call("POST", f"/v1/spends/{spend['spend_id']}/signatures", {"psbt": phone.sign(psbt)})
    assert done["state"] == "broadcast"
    mine(1)


def test_cosigner_key_never_in_database_or_logs(device, chain_node, mine, chain_settings, caplog):
    from tests.logcapture import captured_logs
    with captured_logs() as stream:
        phone = PhoneWallet()
        account = create(device, phone)
        fund(chain_node, mine, device, account, "0.2")
        spend_and_sign(device, phone, account, [{"address": chain_node.faucet.getnewaddress(), "amount_sat": 1_000_000}])
    from cosigner.model import Account, CosignerKey
    from cosigner.vault import SealedSecret, keyring_from_settings, open_secret
    from store.session import engine_for, session_scope
    with session_scope(chain_settings.database_url) as s:
        acct = s.get(Account, account["account_id"])
        key = s.get(CosignerKey, acct.server_key_id)
        xprv = open_secret(keyring_from_settings(chain_settings),
                           SealedSecret(key.kek_id, key.wrapped_dek, key.ciphertext), key.id).decode()
    from embit.bip32 import HDKey
    root = HDKey.from_string(xprv)
    needles = [xprv, xprv[:40], root.key.secret.hex(), base64.b64encode(root.key.secret).decode()]
    engine = engine_for(chain_settings.database_url)
    meta = MetaData()
    meta.reflect(bind=engine)
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(table.select()):
                text = " ".join(v.hex() if isinstance(v, (bytes, memoryview)) else str(v) for v in row)
                for n in needles:
                    assert n not in text, f"cosigner key material in table {table.name}"
    logs = stream.getvalue() + caplog.text
    assert logs  # the requests were logged
    for n in needles:
        assert n not in logs
