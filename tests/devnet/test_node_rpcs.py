"""Node RPCs and the JSON-RPC transport: shapes, error codes, authentication."""
from __future__ import annotations

import base64
from decimal import Decimal
import http.client
import json

import pytest

from chain.errors import RPCUnavailable
from chain.rpc import BitcoinRPC
from _devnet_kit import Key, with_checksum, expect_rpc_error, hd_cosigner, Descriptor, NET

REGTEST_GENESIS = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"


def test_chain_info_is_regtest_with_real_genesis(rpc):
    info = rpc.getblockchaininfo()
    assert info["chain"] == "regtest"
    assert info["blocks"] == rpc.getblockcount()
    assert info["bestblockhash"] == rpc.getbestblockhash()
    assert rpc.getblockhash(0) == REGTEST_GENESIS
    net = rpc.getnetworkinfo()
    assert isinstance(net["version"], int) and net["subversion"].startswith("/")


def test_getblock_verbosities_and_header(rpc, mine):
    block_hash = mine(1)[0]
    raw = rpc.getblock(block_hash, 0)
    assert isinstance(raw, str) and len(raw) >= 160
    b1 = rpc.getblock(block_hash, 1)
    assert b1["hash"] == block_hash and b1["confirmations"] == 1
    assert b1["height"] == rpc.getblockcount()
    assert b1["bits"] == "207fffff"
    assert isinstance(b1["tx"][0], str)
    b2 = rpc.getblock(block_hash, 2)
    coinbase = b2["tx"][0]
    assert "coinbase" in coinbase["vin"][0]
    # witness commitment output present (OP_RETURN aa21a9ed...)
    assert any(o["scriptPubKey"]["hex"].startswith("6a24aa21a9ed") for o in coinbase["vout"])
    header = rpc.getblockheader(block_hash)
    assert header["merkleroot"] == b1["merkleroot"] and header["previousblockhash"] == b1["previousblockhash"]
    assert rpc.getblockheader(block_hash, False) == raw[:160]


def test_coinbase_pays_regtest_subsidy_plus_fees(rpc, faucet, mine):
    faucet.sendtoaddress(Key().address, 0.01)            # at least one fee-paying tx
    block = rpc.getblock(mine(1)[0], 2)
    subsidy = Decimal(50) / 2 ** (block["height"] // 150)   # regtest halves every 150 blocks
    fees = sum(t["fee"] for t in block["tx"][1:])
    assert len(block["tx"]) >= 2 and fees > 0
    assert sum(o["value"] for o in block["tx"][0]["vout"]) == subsidy + fees


def test_unknown_method_and_bad_params(rpc):
    assert expect_rpc_error(rpc.nosuchmethod).code == -32601
    assert expect_rpc_error(rpc.getblockhash, "one").code == -3
    assert expect_rpc_error(rpc.getblockhash, 10 ** 7).code == -8
    assert expect_rpc_error(rpc.getblockcount, 1).code == -1
    assert expect_rpc_error(rpc.getblock, "00" * 32).code == -5
    assert expect_rpc_error(rpc.sendrawtransaction, "zz").code == -22
    assert expect_rpc_error(rpc.decoderawtransaction, "0000").code == -22
    assert expect_rpc_error(rpc.decodepsbt, "not a psbt").code == -22
    assert expect_rpc_error(rpc.getrawtransaction, "11" * 32, True).code == -5
    assert expect_rpc_error(rpc.getdescriptorinfo, "wpkh(nonsense)").code == -5
    assert expect_rpc_error(rpc.generatetoaddress, 1, "bcrt1qnotanaddress").code == -5
    assert expect_rpc_error(rpc.estimatesmartfee, 0).code == -8


def test_wallet_endpoint_errors(node):
    assert expect_rpc_error(node.rpc("no-such-wallet").getbalances).code == -18


def test_wrong_password_is_http_401(node):
    bad = BitcoinRPC(node.url, node.user, "wrong-password", timeout=10)
    with pytest.raises(RPCUnavailable, match="401"):
        bad.getblockcount()


def _post(node, payload, path="/"):
    host, port = node.url[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    auth = base64.b64encode(f"{node.user}:{node.password}".encode()).decode()
    conn.request("POST", path, json.dumps(payload), {"Authorization": f"Basic {auth}",
                                                     "Content-Type": "application/json"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, resp.getheader("Content-Type"), json.loads(body) if body else None


def test_jsonrpc_envelopes_and_batches(node, rpc):
    height = rpc.getblockcount()
    status, ctype, body = _post(node, {"jsonrpc": "2.0", "method": "getblockcount", "params": [], "id": 7})
    assert (status, ctype) == (200, "application/json")
    assert body["result"] == height and body["id"] == 7 and "error" not in body
    status, _, body = _post(node, {"jsonrpc": "2.0", "method": "nosuch", "params": [], "id": 8})
    assert status == 200 and body["error"]["code"] == -32601 and "result" not in body
    status, _, body = _post(node, {"version": "1.1", "method": "nosuch", "params": [], "id": 9})
    assert status == 404 and body["error"]["code"] == -32601
    status, _, body = _post(node, {"method": "getblockcount", "params": [], "id": 10})
    assert status == 200 and body["result"] == height and body["error"] is None
    status, _, body = _post(node, [{"jsonrpc": "2.0", "method": "getblockcount", "id": 1},
                                   {"jsonrpc": "2.0", "method": "getblockhash", "params": [0], "id": 2}])
    assert status == 200 and [r["id"] for r in body] == [1, 2]
    assert body[1]["result"] == REGTEST_GENESIS
    status, _, body = _post(node, {"jsonrpc": "2.0", "method": "getblockhash", "params": {"height": 0}, "id": 3})
    assert body["result"] == REGTEST_GENESIS


def test_descriptor_checksums_and_derivation_match_embit(rpc):
    _, k1 = hd_cosigner()
    _, k2 = hd_cosigner()
    body = f"wsh(sortedmulti(1,{k1}/0/*,{k2}/0/*))"
    info = rpc.getdescriptorinfo(body)
    expected = with_checksum(body)
    assert info["checksum"] == expected.split("#")[1]
    normalized, _, its_checksum = info["descriptor"].partition("#")
    assert normalized.replace("'", "h") == body and with_checksum(normalized).endswith(its_checksum)
    assert info["isrange"] is True and info["hasprivatekeys"] is False
    desc = Descriptor.from_string(body)
    assert rpc.deriveaddresses(expected, [0, 2]) == [desc.derive(i).address(NET) for i in range(3)]
    assert expect_rpc_error(rpc.deriveaddresses, body, [0, 2]).code == -5     # checksum required
    assert expect_rpc_error(rpc.deriveaddresses, expected).code == -8         # range required


def test_validateaddress(rpc):
    key = Key()
    ok = rpc.validateaddress(key.address)
    assert ok["isvalid"] is True and ok["scriptPubKey"] == key.spk.data.hex()
    assert ok["iswitness"] is True and ok["witness_version"] == 0
    assert rpc.validateaddress("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq")["isvalid"] is False


def test_mempool_views(rpc, faucet):
    txid = faucet.sendtoaddress(Key().address, 0.1)
    assert txid in rpc.getrawmempool()
    entry = rpc.getmempoolentry(txid)
    assert entry["vsize"] > 0 and entry["fees"]["base"] > 0
    info = rpc.getmempoolinfo()
    assert info["size"] >= 1
    verbose = rpc.getrawmempool(True)
    assert verbose[txid]["wtxid"] == entry["wtxid"]
    assert expect_rpc_error(rpc.getmempoolentry, "22" * 32).code == -5
    est = rpc.estimatesmartfee(2)
    assert "feerate" in est or est["errors"]
    assert isinstance(rpc.uptime(), int)


def test_generateblock_gettxout_and_raw_transactions(rpc, faucet, mine):
    key = Key()
    mine(1)                                  # faucet coins confirmed: the tx has no mempool parent
    txid = faucet.sendtoaddress(key.address, 0.05)
    rpc.syncwithvalidationinterfacequeue()
    raw = rpc.getrawtransaction(txid)
    decoded = rpc.decoderawtransaction(raw)
    assert decoded["txid"] == txid and "hex" not in decoded
    vout = [o["n"] for o in decoded["vout"] if o["scriptPubKey"].get("address") == key.address][0]
    assert rpc.gettxout(txid, vout)["confirmations"] == 0
    block = rpc.generateblock(key.address, [txid])["hash"]
    assert rpc.getblock(block)["tx"][1] == txid
    verbose = rpc.getrawtransaction(txid, True)
    assert verbose["blockhash"] == block and verbose["confirmations"] == 1 and verbose["hex"] == raw
    out = rpc.gettxout(txid, vout)
    assert out["confirmations"] == 1 and out["value"] == Decimal("0.05") and out["coinbase"] is False
    assert rpc.gettxout(txid, 99) is None


def test_concurrent_clients(node, rpc, faucet):
    """Several threads reading and writing at once all get consistent answers."""
    import threading
    errors, txids = [], []

    def reader():
        try:
            for _ in range(25):
                assert rpc.getblockhash(rpc.getblockcount())
        except Exception as exc:          # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    def sender():
        try:
            for _ in range(3):
                txids.append(faucet.sendtoaddress(Key().address, 0.001))
        except Exception as exc:          # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(6)] + [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    pool = set(rpc.getrawmempool())
    assert len(txids) == 6 and set(txids) <= pool
