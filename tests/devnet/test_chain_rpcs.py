"""The RPCs the block follower and restores use, as Bitcoin Core answers them: getblock
verbosity 2/3 (fee, prevout), getrawmempool (verbose, mempool_sequence), reorgs with
invalidateblock / reconsiderblock / preciousblock and blocks mined on a fork,
getblockheader off the active chain, scanblocks (start / status / abort and its
errors), getindexinfo, a JSON-RPC batch, and signmessage on a multisig address.
Every test leaves the session's chain on its longest branch."""
from __future__ import annotations

from decimal import Decimal

from chain.rpc import btc_to_sat
from _devnet_kit import Key, expect_rpc_error, fund, hd_cosigner, with_checksum


def test_getblock_verbosity_3_gives_prevouts_and_2_gives_fees(rpc, faucet, mine):
    key = Key()
    txid, vout, value = fund(rpc, faucet, key.address, "0.5")
    block_hash = mine(1)[0]
    b3 = rpc.getblock(block_hash, 3)
    tx = next(t for t in b3["tx"] if t["txid"] == txid)
    prevouts = [vin["prevout"] for vin in tx["vin"]]
    for p in prevouts:
        assert set(p) >= {"generated", "height", "value", "scriptPubKey"}
        assert isinstance(p["generated"], bool) and isinstance(p["height"], int)
        assert "hex" in p["scriptPubKey"]
    fee = btc_to_sat(tx["fee"])
    assert fee == sum(btc_to_sat(p["value"]) for p in prevouts) - sum(btc_to_sat(o["value"]) for o in tx["vout"])
    assert "prevout" not in b3["tx"][0]["vin"][0] and "fee" not in b3["tx"][0]
    b2 = rpc.getblock(block_hash, 2)
    tx2 = next(t for t in b2["tx"] if t["txid"] == txid)
    assert btc_to_sat(tx2["fee"]) == fee and all("prevout" not in vin for vin in tx2["vin"])
    assert b3["tx"][1:] and rpc.getblock(block_hash, 4)["tx"][1]["vin"][0]["prevout"]  # above 3 means 3
    assert b3.get("nextblockhash") is None and b3["previousblockhash"] == rpc.getblockhash(b3["height"] - 1)
    assert vout >= 0 and value == 50_000_000


def test_getrawmempool_verbose_and_sequence(rpc, faucet, mine):
    mine(1)
    before = rpc.getrawmempool(False, True)
    assert before["txids"] == [] and isinstance(before["mempool_sequence"], int)
    txid, _, _ = fund(rpc, faucet, Key().address, "0.01")
    after = rpc.getrawmempool(False, True)
    assert after["txids"] == [txid] and after["mempool_sequence"] > before["mempool_sequence"]
    verbose = rpc.getrawmempool(True)
    entry = verbose[txid]
    assert {"vsize", "weight", "time", "height", "depends", "spentby", "fees", "wtxid"} <= set(entry)
    assert btc_to_sat(entry["fees"]["base"]) > 0
    assert rpc.getrawmempool() == [txid]
    mine(1)
    assert rpc.getrawmempool(False, True)["mempool_sequence"] > after["mempool_sequence"]


def test_invalidateblock_returns_transactions_to_the_mempool_and_mining_forks(rpc, faucet, mine):
    key, other = Key(), Key()
    txid, _, _ = fund(rpc, faucet, key.address, "0.2")
    tip = mine(1)[0]
    height = rpc.getblockcount()
    assert rpc.invalidateblock(tip) is None
    assert rpc.getblockcount() == height - 1 and rpc.getbestblockhash() != tip
    assert txid in rpc.getrawmempool()
    header = rpc.getblockheader(tip)
    assert header["confirmations"] == -1 and "nextblockhash" not in header
    assert rpc.getblock(tip, 1)["confirmations"] == -1
    fork = rpc.generatetoaddress(1, other.address)[0]       # a competing block at the same height
    assert fork != tip and rpc.getbestblockhash() == fork and rpc.getblockcount() == height
    assert txid not in rpc.getrawmempool()
    assert rpc.getrawtransaction(txid, True)["blockhash"] == fork
    tips = {t["hash"]: t for t in rpc.getchaintips()}
    assert tips[fork]["status"] == "active" and tips[tip]["status"] == "invalid"
    # precious decides between equal-work tips once both are valid again
    rpc.reconsiderblock(tip)
    rpc.preciousblock(fork)
    assert rpc.getbestblockhash() == fork
    rpc.preciousblock(tip)
    assert rpc.getbestblockhash() == tip
    assert rpc.getrawtransaction(txid, True)["blockhash"] == tip
    assert rpc.getblockheader(fork)["confirmations"] == -1
    rpc.preciousblock(fork)
    assert rpc.getbestblockhash() == fork
    # one more block on the fork: the other branch can no longer be preferred
    top = mine(1)[0]
    rpc.preciousblock(tip)
    assert rpc.getbestblockhash() == top


def test_reconsiderblock_restores_the_longer_branch_and_its_ancestors(rpc, mine):
    blocks = mine(4)
    rpc.invalidateblock(blocks[-1])
    rpc.invalidateblock(blocks[-2])
    assert rpc.getbestblockhash() == blocks[-3]
    rpc.reconsiderblock(blocks[-1])                    # ancestors are reconsidered too
    assert rpc.getbestblockhash() == blocks[-1]
    rpc.invalidateblock(blocks[-3])
    assert rpc.getbestblockhash() == blocks[-4]
    rpc.reconsiderblock(blocks[-3])                    # and descendants
    assert rpc.getbestblockhash() == blocks[-1]


def test_reorg_errors(rpc):
    unknown = "11" * 32
    for method in ("invalidateblock", "reconsiderblock", "preciousblock"):
        assert expect_rpc_error(getattr(rpc, method), unknown).code == -5


def test_scanblocks_finds_outputs_and_spends_and_reports_its_errors(node, rpc, faucet, mine):
    root, key_text = hd_cosigner()
    desc = with_checksum(f"wpkh({key_text}/0/*)")
    address = rpc.deriveaddresses(desc, [7, 7])[0]
    start = rpc.getblockcount()
    txid, vout, _value = fund(rpc, faucet, address, "0.3")
    paid = mine(1)[0]
    mine(2)
    # wait for Core's filter index to catch up (devnet's is always synced)
    for _ in range(200):
        info = rpc.getindexinfo().get("basic block filter index")
        if info and info["synced"] and info["best_block_height"] >= rpc.getblockcount():
            break
    out = rpc.scanblocks("start", [{"desc": desc, "range": [0, 20]}], start)
    assert paid in out["relevant_blocks"] and out["completed"] is True
    assert out["from_height"] == start and out["to_height"] == rpc.getblockcount()
    assert rpc.scanblocks("start", [f"addr({address})"], start, start)["relevant_blocks"] == []
    assert paid not in rpc.scanblocks("start", [{"desc": desc, "range": [8, 20]}], start)["relevant_blocks"]
    assert rpc.scanblocks("status") is None
    assert rpc.scanblocks("abort") is False
    assert expect_rpc_error(rpc.scanblocks, "foobar").code == -8
    assert expect_rpc_error(rpc.scanblocks, "start", [f"addr({address})"], 0, 10, "extended").code == -5
    assert expect_rpc_error(rpc.scanblocks, "start", [f"addr({address})"], 100_000_000).code == -1
    assert expect_rpc_error(rpc.scanblocks, "start", [f"addr({address})"], 10, 0).code == -1
    del txid, vout, root


def test_batch_answers_each_call_in_order(node):
    rpc = node.rpc()
    answers = rpc.batch([("getblockcount", []), ("getblockhash", [0]), ("getblockhash", [10 ** 9]),
                         ("nosuchmethod", [])])
    assert answers[0] == rpc.getblockcount() and answers[1] == rpc.getblockhash(0)
    assert answers[2].code == -8 and answers[3].code == -32601


def test_signmessage_refuses_a_multisig_address(node, rpc, faucet):
    _r1, k1 = hd_cosigner()
    _r2, k2 = hd_cosigner()
    desc = with_checksum(f"wsh(sortedmulti(1,{k1}/0/*,{k2}/0/*))")
    multisig = rpc.deriveaddresses(desc, [0, 0])[0]
    assert expect_rpc_error(faucet.signmessage, multisig, "hello").code == -3
    assert expect_rpc_error(faucet.signmessage, "notanaddress", "hello").code == -5
    assert Decimal(0) <= faucet.getbalance()
