"""PSBTs built by Custos itself (cosigner.build, no wallet RPC) as the node sees them:
`decodepsbt` finds every field a signer needs, `analyzepsbt` names the next role, the
missing signatures and the signed size, and the finalized transaction is accepted at
the requested fee rate. Also `getrawtransaction <txid> false <blockhash>` (how the
builder fetches previous transactions without -txindex)."""
from __future__ import annotations

import hashlib

import pytest
from embit.networks import NETWORKS
from embit.script import Script

from _devnet_kit import btc_to_sat, expect_rpc_error, fund
from cosigner import build, coinselect as cs, vsize as vs
from cosigner.finalize import finalize
from cosigner.psbt import FeeCaps, inspect, parse
from tests.unit.cosigner_kit import Account


def h160(pub) -> str:
    return hashlib.new("ripemd160", hashlib.sha256(pub.sec()).digest()).hexdigest()


@pytest.fixture(scope="module", params=[("2of3", None), ("2of3_decaying", 1_000)], ids=["2of3", "decaying"])
def built(request, rpc, faucet, mine):
    template, decay = request.param
    a = Account(template, decay, label=f"node-{template}")
    coins = []
    for n, amount in enumerate(("0.3", "0.2")):
        address = a.view.receive.derive(n).address(NETWORKS["regtest"])
        txid, vout, value = fund(rpc, faucet, address, amount)
        coins.append((txid, vout, value, n))
    [block] = mine(1)
    made = []
    for txid, vout, value, n in coins:
        raw = bytes.fromhex(rpc.getrawtransaction(txid, False, block))
        made.append(build.Coin(txid, vout, value, a.spk(0, n).data, 0, n, raw))
    payee = faucet.getnewaddress()
    spk = Script.from_address(payee).data
    w = build.coin_weight(a.view)
    t = cs.Target((40_000_000,), (len(spk),), vs.rate_to_kvb(3.0), change_input_weight=w)
    sel = cs.select([cs.Candidate(c.amount_sat, w, c) for c in made], t)
    psbt = build.build_psbt(a.view, [c.ref for c in sel.inputs], [(spk, sel.amounts[0])],
                            change=(0, sel.change), change_position=1, locktime=rpc.getblockcount())
    return {"account": a, "selection": sel, "psbt": psbt, "block": block, "coins": made}


def test_getrawtransaction_in_a_given_block(rpc, built):
    coin = built["coins"][0]
    verbose = rpc.getrawtransaction(coin.txid, True, built["block"])
    assert verbose["in_active_chain"] is True and verbose["txid"] == coin.txid
    other = rpc.getblockhash(1)
    assert expect_rpc_error(rpc.getrawtransaction, coin.txid, False, other).code == -5
    assert expect_rpc_error(rpc.getrawtransaction, coin.txid, False, "00" * 32).code == -5


def test_decodepsbt_sees_every_field(rpc, built):
    a, sel, psbt = built["account"], built["selection"], built["psbt"]
    d = rpc.decodepsbt(psbt.to_string())
    assert btc_to_sat(d["fee"]) == sel.fee
    assert d["tx"]["version"] == 2 and all(v["sequence"] == 0xFFFFFFFD for v in d["tx"]["vin"])
    assert {x["xpub"] for x in d["global_xpubs"]} == {k.xpub for k in a.keys}
    assert {(x["master_fingerprint"], x["path"]) for x in d["global_xpubs"]} == \
        {(k.fingerprint, "m/" + k.path) for k in a.keys}
    per_key = 4 if a.template == "2of3_decaying" else 3
    for inp in d["inputs"]:
        assert "non_witness_utxo" in inp and "witness_utxo" in inp
        assert inp["witness_script"]["type"] == ("multisig" if a.template == "2of3" else "nonstandard")
        assert len(inp["bip32_derivs"]) == per_key
        assert all(x["path"].startswith("m/48h/1h/0h/2h/") for x in inp["bip32_derivs"])
    change = d["outputs"][1]
    assert len(change["bip32_derivs"]) == per_key and "witness_script" in change
    assert d["outputs"][0] == {} or "bip32_derivs" not in d["outputs"][0]


def test_analyzepsbt_names_the_signers_and_the_size(rpc, built):
    a, sel, psbt = built["account"], built["selection"], built["psbt"]
    r = rpc.analyzepsbt(psbt.to_string())
    assert r["next"] == "signer" and btc_to_sat(r["fee"]) == sel.fee
    assert all(i["has_utxo"] and not i["is_final"] and i["next"] == "signer" for i in r["inputs"])
    if a.template == "2of3":
        # Core's dummy signatures are 72 bytes, like the server's estimate: the same size
        assert r["estimated_vsize"] == sel.vsize
        for inp, c in zip(r["inputs"], sel.inputs):
            keys = [a.roots[n].derive(f"m/48h/1h/0h/2h/0/{c.ref.index}").key for n in range(3)]
            assert sorted(inp["missing"]["signatures"]) == sorted(h160(k.get_public_key()) for k in keys)
    else:
        # Core's dummy checker lets the older() branch size the input: smaller than ours
        assert r["estimated_vsize"] < sel.vsize
    once = parse(psbt.to_string())
    once.sign_with(a.platform)
    r = rpc.analyzepsbt(once.to_string())
    assert r["next"] == "signer"
    if a.template == "2of3":
        assert all(len(i["missing"]["signatures"]) == 2 for i in r["inputs"])
    once.sign_with(a.server)
    r = rpc.analyzepsbt(once.to_string())
    assert r["next"] == "finalizer" and all(i["next"] == "finalizer" for i in r["inputs"])


def test_the_finalized_spend_is_accepted_at_the_requested_rate(rpc, built, mine):
    a, sel = built["account"], built["selection"]
    psbt = parse(built["psbt"].to_string())
    psbt.sign_with(a.platform), psbt.sign_with(a.server)
    intent = inspect(psbt, a.view, caps=FeeCaps())
    raw = finalize(psbt, intent.inputs, a.view).hex()
    [res] = rpc.testmempoolaccept([raw])
    assert res["allowed"] is True, res
    assert res["vsize"] <= sel.vsize and 3.0 <= sel.fee / res["vsize"] < 4.0
    assert btc_to_sat(res["fees"]["base"]) == sel.fee
    txid = rpc.sendrawtransaction(raw)
    mine(1)
    assert rpc.getrawtransaction(txid, True)["confirmations"] == 1
