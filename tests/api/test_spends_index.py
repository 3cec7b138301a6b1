"""Spends built from the chain index, over HTTP against devnet (or a real bitcoind):
the balance stays exact while coins are reserved, every way a spend ends frees its
coins at once (cancel, a refused broadcast, reservation expiry), held spends keep
theirs, inputs are checked against the index, and the owner can list what is open."""
from __future__ import annotations

import datetime as dt

import pytest
from embit.psbt import PSBT
from embit.script import Script
from embit.transaction import TransactionOutput

from client.phone import PhoneWallet
from client.sdk import ApiError
from cosigner import build, descriptors as d
from cosigner.finalize import finalize
from cosigner.psbt import AccountView, InputInfo
from store.base import utcnow
from store.session import session_scope
from tests.api.accounts_kit import create, fund


def view_of(account: dict) -> AccountView:
    keys = [d.parse_key(k["xpub"], k["origin"], "regtest") for k in
            (account["platform_key"], account["recovery_key"], account["server_key"])]
    desc = d.AccountDescriptors(account["receive_descriptor"], account["change_descriptor"], account["template"])
    return AccountView("regtest", account["template"], *keys, *desc.parsed())


def build_spend(device, account, amount, address, **opts):
    return device.call("POST", f"/v1/accounts/{account['account_id']}/spends",
                       {"outputs": [{"address": address, "amount_sat": amount}], "fee_rate_sat_vb": 2, **opts})


def balance(device, account):
    return device.call("GET", f"/v1/accounts/{account['account_id']}/balance")


def test_balance_is_exact_while_a_spend_is_built_and_the_owner_can_list_it(device, chain_node, mine):
    phone = PhoneWallet()
    account = create(device, phone)
    fund(chain_node, mine, device, account, "0.3")
    fund(chain_node, mine, device, account, "0.2")
    spend = build_spend(device, account, 10_000_000, chain_node.faucet.getnewaddress())
    held = sum(i["amount_sat"] for i in spend["inputs"])
    b = balance(device, account)
    assert b["confirmed"] == 50_000_000 and b["reserved_sat"] == held and b["trusted_pending"] == 0
    assert spend["reserved_until"]
    page = device.call("GET", f"/v1/accounts/{account['account_id']}/spends?state=built")
    assert [s["spend_id"] for s in page["spends"]] == [spend["spend_id"]] and page["next_cursor"] is None
    assert device.call("GET", f"/v1/accounts/{account['account_id']}/spends?state=broadcast")["spends"] == []
    device.call("DELETE", f"/v1/spends/{spend['spend_id']}")
    assert balance(device, account)["reserved_sat"] == 0
    # a second spend may now use every coin
    whole = build_spend(device, account, 50_000_000, chain_node.faucet.getnewaddress(), subtract_fee_from=[0])
    assert len(whole["inputs"]) == 2 and not any(o["change"] for o in whole["outputs"])
    assert whole["outputs"][0]["amount_sat"] == 50_000_000 - whole["fee_sat"]


def test_listing_pages_and_refuses_unknown_states(device, chain_node, mine):
    account = create(device, PhoneWallet())
    for _ in range(3):
        fund(chain_node, mine, device, account, "0.01")
    made = [build_spend(device, account, 100_000, chain_node.faucet.getnewaddress())["spend_id"] for _ in range(3)]
    first = device.call("GET", f"/v1/accounts/{account['account_id']}/spends?limit=2")
    rest = device.call("GET", f"/v1/accounts/{account['account_id']}/spends?limit=2&cursor={first['next_cursor']}")
    assert sorted(s["spend_id"] for s in first["spends"] + rest["spends"]) == sorted(made)
    assert rest["next_cursor"] is None
    with pytest.raises(ApiError) as bad:
        device.call("GET", f"/v1/accounts/{account['account_id']}/spends?state=nonsense")
    assert (bad.value.status, bad.value.code) == (400, "invalid_state")


def test_three_builds_never_share_a_coin_and_the_fourth_is_short(device, chain_node, mine):
    account = create(device, PhoneWallet())
    for _ in range(3):
        fund(chain_node, mine, device, account, "0.01")
    spends = [build_spend(device, account, 500_000, chain_node.faucet.getnewaddress()) for _ in range(3)]
    used = [(i["txid"], i["vout"]) for s in spends for i in s["inputs"]]
    assert len(used) == len(set(used)) == 3
    with pytest.raises(ApiError) as short:
        build_spend(device, account, 500_000, chain_node.faucet.getnewaddress())
    assert (short.value.status, short.value.code) == (422, "insufficient_funds")
    details = short.value.details
    assert details["available_sat"] == 0 and details["shortfall_sat"] == details["needed_sat"] > 500_000


def test_an_understated_input_amount_is_refused_and_cancel_frees_the_coin(device, chain_node, mine):
    phone = PhoneWallet()
    account = create(device, phone)
    fund(chain_node, mine, device, account, "0.25")
    spend = build_spend(device, account, 5_000_000, chain_node.faucet.getnewaddress())
    psbt = PSBT.from_string(spend["psbt"])
    inp = psbt.inputs[0]
    inp.non_witness_utxo = None                   # the proof the phone would check is dropped...
    inp.witness_utxo = TransactionOutput(inp.witness_utxo.value - 1_000_000, inp.witness_utxo.script_pubkey)
    with pytest.raises(ApiError) as refused:      # ...and the index still knows the real amount
        device.call("POST", f"/v1/spends/{spend['spend_id']}/signatures", {"psbt": phone.sign(psbt)})
    assert (refused.value.status, refused.value.code) == (422, "input_amount_mismatch")
    assert refused.value.details["indexed_sat"] == 25_000_000
    assert device.call("GET", f"/v1/spends/{spend['spend_id']}")["state"] == "built"   # nothing changed
    device.call("DELETE", f"/v1/spends/{spend['spend_id']}")
    assert balance(device, account)["reserved_sat"] == 0
    again = build_spend(device, account, 25_000_000, chain_node.faucet.getnewaddress(), subtract_fee_from=[0])
    assert len(again["inputs"]) == 1


def test_a_broadcast_the_node_refuses_frees_every_coin_at_once(device, chain_node, mine):
    phone = PhoneWallet()
    account = create(device, phone)
    fund(chain_node, mine, device, account, "0.3")
    fund(chain_node, mine, device, account, "0.2")
    spend = build_spend(device, account, 40_000_000, chain_node.faucet.getnewaddress())
    assert len(spend["inputs"]) == 2
    # the owner's phone and recovery key spend one of those coins without the server
    view = view_of(account)
    first = spend["inputs"][0]
    coin = build.Coin(first["txid"], first["vout"], first["amount_sat"],
                      build.derived(view, first["branch"], first["index"]).script_pubkey().data,
                      first["branch"], first["index"])
    away = build.build_psbt(view, [coin], [(Script.from_address(chain_node.faucet.getnewaddress()).data,
                                            first["amount_sat"] - 5_000)])
    away.sign_with(phone.platform.root), away.sign_with(phone.recovery.root)
    raw = finalize(away, (InputInfo(coin.txid, coin.vout, coin.amount_sat, coin.branch, coin.index),), view)
    rpc = chain_node.rpc()
    rpc.sendrawtransaction(raw.hex())
    rpc.generatetoaddress(1, chain_node.faucet.getnewaddress())   # mined; the index has not seen it yet
    signed = phone.sign(phone.verify_spend(account, spend, [{"address": o["address"], "amount_sat": o["amount_sat"]}
                                                            for o in spend["outputs"] if not o["change"]]))
    with pytest.raises(ApiError) as refused:
        device.call("POST", f"/v1/spends/{spend['spend_id']}/signatures", {"psbt": signed})
    assert (refused.value.status, refused.value.code) == (422, "chain_rejected")
    gone = device.call("GET", f"/v1/spends/{spend['spend_id']}")
    assert gone["state"] == "failed" and gone["reserved_until"] is None
    assert balance(device, account)["reserved_sat"] == 0
    with pytest.raises(ApiError) as closed:
        device.call("DELETE", f"/v1/spends/{spend['spend_id']}")
    assert closed.value.code == "spend_not_open"
    mine(1)  # the follower sees the outside spend
    left = [i for i in spend["inputs"] if i["txid"] != first["txid"] or i["vout"] != first["vout"]][0]
    assert balance(device, account)["confirmed"] == left["amount_sat"]
    rest = build_spend(device, account, left["amount_sat"], chain_node.faucet.getnewaddress(), subtract_fee_from=[0])
    assert [(i["txid"], i["vout"]) for i in rest["inputs"]] == [(left["txid"], left["vout"])]


def test_an_expired_reservation_frees_the_coins(device, chain_node, mine, chain_settings):
    from cosigner.spend_lifecycle import expire_reservation
    from config.bootstrap import cosigner_context
    account = create(device, PhoneWallet())
    fund(chain_node, mine, device, account, "0.1")
    spend = build_spend(device, account, 1_000_000, chain_node.faucet.getnewaddress())
    ctx = cosigner_context(chain_settings)
    until = dt.datetime.fromisoformat(spend["reserved_until"])
    assert dt.timedelta(seconds=chain_settings.spend_reservation_ttl - 60) < until - utcnow() <= \
        dt.timedelta(seconds=chain_settings.spend_reservation_ttl)
    with session_scope(chain_settings.database_url) as s:   # the job woken early does nothing but wait
        assert expire_reservation(s, ctx, spend["spend_id"], utcnow()) == "rescheduled"
    with pytest.raises(ApiError):
        build_spend(device, account, 1_000_000, chain_node.faucet.getnewaddress())
    with session_scope(chain_settings.database_url) as s:
        assert expire_reservation(s, ctx, spend["spend_id"], until + dt.timedelta(seconds=1)) == "expired"
    assert device.call("GET", f"/v1/spends/{spend['spend_id']}")["state"] == "expired"
    assert balance(device, account)["reserved_sat"] == 0
    assert build_spend(device, account, 1_000_000, chain_node.faucet.getnewaddress())["inputs"]


def test_a_held_spend_keeps_its_coins_past_the_ttl(device, chain_node, mine, chain_settings):
    from cosigner.spend_lifecycle import expire_reservation
    from config.bootstrap import cosigner_context
    phone = PhoneWallet()
    account = create(device, phone)
    fund(chain_node, mine, device, account, "0.1")
    device.call("PUT", f"/v1/accounts/{account['account_id']}/policy", {"delay_all": True, "delay_seconds": 7200})
    outputs = [{"address": chain_node.faucet.getnewaddress(), "amount_sat": 1_000_000}]
    spend = build_spend(device, account, 1_000_000, outputs[0]["address"])
    held = device.call("POST", f"/v1/spends/{spend['spend_id']}/signatures",
                       {"psbt": phone.sign(phone.verify_spend(account, spend, outputs))})
    assert held["state"] == "delayed"
    release_at = dt.datetime.fromisoformat(held["release_at"])
    assert dt.datetime.fromisoformat(held["reserved_until"]) >= release_at
    later = utcnow() + dt.timedelta(seconds=chain_settings.spend_reservation_ttl + 60)
    with session_scope(chain_settings.database_url) as s:
        assert expire_reservation(s, cosigner_context(chain_settings), spend["spend_id"], later) == "renewed"
    assert device.call("GET", f"/v1/spends/{spend['spend_id']}")["state"] == "delayed"
    assert balance(device, account)["reserved_sat"] == 10_000_000


def test_a_bump_must_outbid_the_original(device, chain_node, mine):
    phone = PhoneWallet()
    account = create(device, phone)
    fund(chain_node, mine, device, account, "0.3")
    outputs = [{"address": chain_node.faucet.getnewaddress(), "amount_sat": 5_000_000}]
    spend = build_spend(device, account, 5_000_000, outputs[0]["address"], fee_rate_sat_vb=5)
    sent = device.call("POST", f"/v1/spends/{spend['spend_id']}/signatures",
                       {"psbt": phone.sign(phone.verify_spend(account, spend, outputs))})
    assert sent["state"] == "broadcast"
    # the index knows our broadcast at once, before any follower pass
    change = sum(o["amount_sat"] for o in spend["outputs"] if o["change"])
    after = balance(device, account)
    assert after["confirmed"] == 0 and after["trusted_pending"] == change and after["reserved_sat"] == 0
    with pytest.raises(ApiError) as low:
        device.call("POST", f"/v1/spends/{spend['spend_id']}/bump", {"fee_rate": 5})
    assert (low.value.status, low.value.code) == (400, "fee_rate_too_low")
    bumped = device.call("POST", f"/v1/spends/{spend['spend_id']}/bump", {"fee_rate": 12})
    assert sorted((i["txid"], i["vout"]) for i in bumped["inputs"]) == \
        sorted((i["txid"], i["vout"]) for i in spend["inputs"])
    ext = [o for o in bumped["outputs"] if not o["change"]]
    assert [(o["address"], o["amount_sat"]) for o in ext] == [(outputs[0]["address"], 5_000_000)]
    assert bumped["fee_rate"] >= 12 and bumped["fee_sat"] > spend["fee_sat"]
    mine(1)


def test_a_cosign_indexes_its_own_transaction_without_recounting_every_confirmed_spend(device, chain_node, mine):
    """The gate applies the transaction it just broadcast to the index (its coins spent at
    once) but leaves the confirmation counts of confirmed spends alone: the tip did not
    move, and that recount rewrites every confirmed spend of every account. The block
    follower still recounts them."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    phone = PhoneWallet()
    account = create(device, phone)
    fund(chain_node, mine, device, account, "0.3")
    fund(chain_node, mine, device, account, "0.2")
    sent = []
    for _ in range(2):
        address = chain_node.faucet.getnewaddress()
        outputs = [{"address": address, "amount_sat": 1_000_000}]
        spend = build_spend(device, account, 1_000_000, address)
        statements = []

        def capture(_conn, _cursor, statement, *_args):
            statements.append(" ".join(statement.split()))
        event.listen(Engine, "before_cursor_execute", capture)
        try:
            result = device.call("POST", f"/v1/spends/{spend['spend_id']}/signatures",
                                 {"psbt": phone.sign(phone.verify_spend(account, spend, outputs))})
        finally:
            event.remove(Engine, "before_cursor_execute", capture)
        assert result["state"] == "broadcast"
        assert any(s.startswith("UPDATE chain_coins SET spent_by_txid") for s in statements)  # indexed at once
        assert not any(s.startswith("UPDATE spends SET confirmations") for s in statements)
        sent.append(spend["spend_id"])
        mine(1)
    # the pass that confirmed the second spend recounted the first one (1 -> 2)
    first, second = (device.call("GET", f"/v1/spends/{sid}") for sid in sent)
    assert (first["state"], first["confirmations"]) == ("confirmed", 2)
    assert (second["state"], second["confirmations"]) == ("confirmed", 1)
    mine(1)   # a block with none of our transactions still moves every count
    first, second = (device.call("GET", f"/v1/spends/{sid}") for sid in sent)
    assert (first["confirmations"], second["confirmations"]) == (3, 2)
