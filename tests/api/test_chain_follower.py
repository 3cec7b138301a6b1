"""The block follower end to end on the test chain (devnet, or Bitcoin Core with
BITCOIND=...), through the HTTP API with the reference client: receive → confirmed →
deep; a reorg that orphans a receive; a reorg that orphans our own spend; a double
spend of our coin by a transaction Custos did not sign; a restored account found by
scanblocks; 1,000 accounts created with zero bitcoind calls."""
from __future__ import annotations

import os
import socket
import threading
from dataclasses import replace
from decimal import Decimal

from embit.bip32 import HDKey
from embit.finalizer import finalize_psbt
from embit.networks import NETWORKS
from embit.psbt import PSBT
from embit.transaction import SIGHASH
from sqlalchemy import select

from client.phone import PhoneWallet
from client.sdk import CustosClient, DeviceKey
from tests.api.accounts_kit import create, fund
from tests.conftest import flask_transport

NET = NETWORKS["regtest"]


def spend_and_sign(device, phone, account, outputs, **opts):
    spend = device.call("POST", f"/v1/accounts/{account['account_id']}/spends", {"outputs": outputs, **opts})
    psbt = phone.verify_spend(account, spend, outputs)
    return spend, device.call("POST", f"/v1/spends/{spend['spend_id']}/signatures", {"psbt": phone.sign(psbt)})


def notes_of(settings, device_id):
    from messaging.model import Notification
    from store.session import session_scope
    with session_scope(settings.database_url) as s:
        return [n.kind for n in s.scalars(select(Notification).where(Notification.device_id == device_id)
                                          .order_by(Notification.id))]


def fork_address() -> str:
    """A fresh address nobody watches: blocks mined to it differ from any earlier one."""
    from embit.script import p2wpkh
    return p2wpkh(HDKey.from_seed(os.urandom(32), version=NET["xprv"]).key.get_public_key()).address(NET)


def test_receive_confirmed_then_deep(device, chain_node, mine, follower):
    account = create(device, PhoneWallet())
    aid = account["account_id"]
    addr = device.call("POST", f"/v1/accounts/{aid}/addresses")["address"]
    txid = chain_node.faucet.sendtoaddress(addr, Decimal("0.05"))
    follower.run_once()
    bal = device.call("GET", f"/v1/accounts/{aid}/balance")
    assert (bal["confirmed"], bal["untrusted_pending"], bal["reserved_sat"]) == (0, 5_000_000, 0)
    [entry] = device.call("GET", f"/v1/accounts/{aid}/transactions")["transactions"]
    assert (entry["txid"], entry["status"], entry["block_height"], entry["confirmations"]) == (txid, "mempool", None, 0)
    mine(1)
    [entry] = device.call("GET", f"/v1/accounts/{aid}/transactions")["transactions"]
    assert entry["status"] == "confirmed" and entry["block_height"] == chain_node.rpc().getblockcount()
    assert device.call("GET", f"/v1/accounts/{aid}/balance")["confirmed"] == 5_000_000
    mine(5)
    [entry] = device.call("GET", f"/v1/accounts/{aid}/transactions")["transactions"]
    assert entry["status"] == "deep" and entry["confirmations"] == 6


def test_reorg_orphans_a_receive_and_it_confirms_again(device, chain_node, mine, follower, chain_settings):
    account = create(device, PhoneWallet())
    aid = account["account_id"]
    _addr, txid = fund(chain_node, mine, device, account, "0.07")
    rpc = chain_node.rpc()
    orphan = rpc.getbestblockhash()
    assert device.call("GET", f"/v1/accounts/{aid}/balance")["confirmed"] == 7_000_000
    rpc.invalidateblock(orphan)
    assert txid in rpc.getrawmempool()
    from config.bootstrap import chain_follower
    notes = []
    follower = chain_follower(chain_settings, notify=lambda s, dev, kind, now: notes.append(kind))
    report = follower.run_once()
    assert report.blocks_undone == 1
    bal = device.call("GET", f"/v1/accounts/{aid}/balance")
    assert (bal["confirmed"], bal["untrusted_pending"]) == (0, 7_000_000)
    assert device.call("GET", f"/v1/accounts/{aid}/transactions")["transactions"][0]["status"] == "mempool"
    fork = rpc.generatetoaddress(2, fork_address())
    follower.run_once()
    [entry] = device.call("GET", f"/v1/accounts/{aid}/transactions")["transactions"]
    assert entry["status"] == "confirmed" and entry["block_height"] == rpc.getblockheader(fork[0])["height"]
    assert device.call("GET", f"/v1/accounts/{aid}/balance")["confirmed"] == 7_000_000
    assert notes == []            # the payment was announced once, when it was first seen


def test_reorg_orphans_our_spend(device, chain_node, mine, follower, chain_settings):
    phone = PhoneWallet()
    account = create(device, phone)
    fund(chain_node, mine, device, account, "0.3")
    _, done = spend_and_sign(device, phone, account, [{"address": chain_node.faucet.getnewaddress(),
                                                        "amount_sat": 1_000_000}], fee_rate_sat_vb=2)
    mine(1)
    assert device.call("GET", f"/v1/spends/{done['spend_id']}")["state"] == "confirmed"
    rpc = chain_node.rpc()
    rpc.invalidateblock(rpc.getbestblockhash())
    follower.run_once()
    got = device.call("GET", f"/v1/spends/{done['spend_id']}")
    assert (got["state"], got["confirmations"]) == ("broadcast", 0)
    assert "spend_reorged" in notes_of(chain_settings, device.device_id)
    from config.bootstrap import chain_follower
    notes = []
    capturing = chain_follower(chain_settings, notify=lambda s, dev, kind, now: notes.append(kind))
    rpc.generatetoaddress(1, fork_address())
    capturing.run_once()
    assert device.call("GET", f"/v1/spends/{done['spend_id']}")["state"] == "confirmed"
    assert notes == ["spend_confirmed"]


def test_double_spend_of_our_coin_by_a_foreign_transaction(device, chain_node, mine, follower, chain_settings):
    phone = PhoneWallet()
    account = create(device, phone)
    aid = account["account_id"]
    fund(chain_node, mine, device, account, "0.2")
    outputs = [{"address": chain_node.faucet.getnewaddress(), "amount_sat": 3_000_000}]
    spend, done = spend_and_sign(device, phone, account, outputs, fee_rate_sat_vb=2)
    assert done["state"] == "broadcast"
    follower.run_once()
    # the phone and the recovery key spend the same coin without the server, paying more fee
    psbt = PSBT.from_string(spend["psbt"])
    change = max(range(len(psbt.outputs)), key=lambda i: psbt.outputs[i].value)
    psbt.outputs[change].value -= 20_000
    for root in (phone.platform.root, phone.recovery.root):
        assert psbt.sign_with(root, SIGHASH.ALL) >= 1
    raw = finalize_psbt(psbt).serialize().hex()
    foreign = chain_node.rpc().sendrawtransaction(raw)
    assert done["txid"] not in chain_node.rpc().getrawmempool()
    follower.run_once()
    assert device.call("GET", f"/v1/spends/{done['spend_id']}")["state"] == "conflicted"
    assert "spend_conflicted" in notes_of(chain_settings, device.device_id)
    history = {t["txid"]: t for t in device.call("GET", f"/v1/accounts/{aid}/transactions")["transactions"]}
    assert history[foreign]["direction"] == "send" and history[foreign]["status"] == "mempool"
    assert history[done["txid"]]["status"] == "conflicted"
    mine(1)
    page = device.call("GET", f"/v1/accounts/{aid}/transactions")["transactions"]
    assert [(t["txid"], t["status"]) for t in page][:1] == [(foreign, "confirmed")]
    assert page[-1]["txid"] == done["txid"] and page[-1]["status"] == "conflicted"   # never confirmed: last


def test_restored_account_is_found_by_scanblocks(device, chain_node, mine, follower, chain_settings):
    from chain import restore
    from config.bootstrap import chain_follower
    from store.base import utcnow
    from store.session import session_scope
    from workers.jobs import ScheduledJob
    root = HDKey.from_seed(os.urandom(32), version=NET["xprv"])
    xpub = root.derive("m/84h/1h/0h").to_public().to_base58(NET["xpub"])
    desc = f"wpkh([{root.my_fingerprint.hex()}/84h/1h/0h]{xpub}/0/*)"
    rpc = chain_node.rpc()
    birthday = int(rpc.getblockheader(rpc.getbestblockhash())["time"])
    checksummed = rpc.getdescriptorinfo(desc)["descriptor"]
    paid = rpc.deriveaddresses(checksummed, [3, 3])[0]
    txid = chain_node.faucet.sendtoaddress(paid, Decimal("0.11"))
    mine(3)   # the index follows these blocks, but no account watches the script yet
    account = device.call("POST", "/v1/accounts", {"name": "restored", "network": "regtest",
                                                    "template": "watch_only", "descriptor": checksummed,
                                                    "birthday": birthday})
    aid = account["account_id"]
    assert account["restore"]["state"] == "pending"
    assert device.call("GET", f"/v1/accounts/{aid}/balance")["confirmed"] == 0
    with session_scope(chain_settings.database_url) as s:
        assert s.scalar(select(ScheduledJob.kind).where(ScheduledJob.subject == aid,
                                                        ScheduledJob.kind == "chain.restore"))
    restore.run(chain_follower(chain_settings), aid, birthday, utcnow())   # the job's body
    got = device.call("GET", f"/v1/accounts/{aid}")["restore"]
    assert got["state"] == "done" and got["method"] == "scanblocks" and got["blocks_found"] == 1
    assert device.call("GET", f"/v1/accounts/{aid}/balance")["confirmed"] == 11_000_000
    [entry] = device.call("GET", f"/v1/accounts/{aid}/transactions")["transactions"]
    assert entry["txid"] == txid and entry["status"] == "confirmed"


def test_a_thousand_accounts_cost_no_bitcoind_call(app_factory, chain_settings):
    """With the Core mirror off, creating accounts never opens a connection to bitcoind
    (the node URL points at a listener that counts connections)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    connections, stop = [], threading.Event()

    def count():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                connections.append(1)
                conn.close()
            except OSError:
                continue
    t = threading.Thread(target=count, daemon=True)
    t.start()
    port = listener.getsockname()[1]
    settings = replace(chain_settings, bitcoind_import_descriptors=False, bitcoind_url=f"http://127.0.0.1:{port}",
                       ratelimit_device="100000/minute", ratelimit_ip="100000/minute",
                       max_accounts_per_device=1_000)  # the per-device cap (issue #14) is not the point here
    app = app_factory(settings)
    client = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app))
    client.register()
    phone = PhoneWallet()
    request = phone.account_request("many")
    try:
        ids = [client.call("POST", "/v1/accounts", request)["account_id"] for _ in range(1_000)]
    finally:
        stop.set()
        t.join(timeout=5)
        listener.close()
    assert len(set(ids)) == 1_000 and connections == []
    from chain.model import WatchedScript
    from sqlalchemy import func
    from store.session import session_scope
    with session_scope(settings.database_url) as s:
        assert s.scalar(select(func.count()).select_from(WatchedScript)
                        .where(WatchedScript.account_id.in_(ids))) == 1_000 * 40
