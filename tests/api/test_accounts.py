"""Accounts and spends through the HTTP API (Flask test client) against the test chain
(devnet, or a real bitcoind when BITCOIND is set)."""
from __future__ import annotations


import pytest
from embit.descriptor import Descriptor
from embit.networks import NETWORKS

from client.phone import PhoneWallet
from client.sdk import ApiError, CustosClient, DeviceKey
from tests.api.accounts_kit import create, fund
from tests.conftest import flask_transport

NET = NETWORKS["regtest"]


def test_create_account_returns_verifiable_descriptors(device):
    phone = PhoneWallet()
    account = create(device, phone)
    assert account["template"] == "2of3" and account["imported"] is False   # no Core wallet mirror by default
    assert account["server_key"]["origin"].endswith("/48h/1h/0h/2h]")
    assert "prv" not in str(account)
    listed = device.call("GET", "/v1/accounts")
    assert [a["account_id"] for a in listed] == [account["account_id"]]


def test_private_key_is_refused_and_nothing_stored(device):
    phone = PhoneWallet()
    body = phone.account_request("oops")
    body["platform_key"]["xpub"] = phone.platform.root.derive("m/48h/1h/0h/2h").to_base58()
    with pytest.raises(ApiError) as info:
        device.call("POST", "/v1/accounts", body)
    assert (info.value.status, info.value.code) == (400, "private_key_sent")
    assert "tprv" not in info.value.message
    assert device.call("GET", "/v1/accounts") == []


@pytest.mark.parametrize("mutate,code", [
    (lambda b: b["recovery_key"].update(b["platform_key"]), "duplicate_keys"),
    (lambda b: b["platform_key"].update(origin="[zzzz/48h/1h/0h/2h]"), "invalid_origin"),
    (lambda b: b.update(network="main"), "wrong_network"),
])
def test_bad_account_requests(device, mutate, code):
    body = PhoneWallet().account_request("bad")
    mutate(body)
    with pytest.raises(ApiError) as info:
        device.call("POST", "/v1/accounts", body)
    assert info.value.code == code and 400 <= info.value.status < 500


def test_other_devices_cannot_see_an_account(device, chain_app):
    account = create(device, PhoneWallet())
    other = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(chain_app))
    other.register()
    with pytest.raises(ApiError) as info:
        other.call("GET", f"/v1/accounts/{account['account_id']}")
    assert (info.value.status, info.value.code) == (404, "account_not_found")


def test_receive_balance_spend_cosign_broadcast_confirm(device, chain_node, mine):
    phone = PhoneWallet()
    account = create(device, phone)
    aid = account["account_id"]
    addr, _ = fund(chain_node, mine, device, account, "0.5")
    addr = addr["address"]
    first = Descriptor.from_string(account["receive_descriptor"].split("#")[0]).derive(0).address(NET)
    assert addr == first
    bal = device.call("GET", f"/v1/accounts/{aid}/balance")
    assert bal["confirmed"] == 50_000_000 and bal["untrusted_pending"] == 0

    dest = chain_node.faucet.getnewaddress()
    outputs = [{"address": dest, "amount_sat": 20_000_000}]
    spend = device.call("POST", f"/v1/accounts/{aid}/spends", {"outputs": outputs, "fee_rate_sat_vb": 5})
    assert spend["state"] == "built" and spend["policy_preview"]["action"] == "approve"
    assert [o["change"] for o in spend["outputs"]].count(True) == 1
    assert spend["fee_sat"] > 0 and 4.5 <= spend["fee_rate"] <= 6
    psbt = phone.verify_spend(account, spend, outputs)
    signed = phone.sign(psbt)
    done = device.call("POST", f"/v1/spends/{spend['spend_id']}/signatures", {"psbt": signed})
    assert done["state"] == "broadcast" and len(done["txid"]) == 64
    again = device.call("POST", f"/v1/spends/{spend['spend_id']}/signatures", {"psbt": signed})
    assert again["txid"] == done["txid"]  # idempotent: same result, broadcast once
    assert done["txid"] in chain_node.rpc().getrawmempool()
    mine(1)
    tx = chain_node.rpc().getrawtransaction(done["txid"], True)
    assert tx["confirmations"] == 1


def test_unsigned_psbt_is_refused_and_nothing_is_broadcast(device, chain_node, mine):
    phone = PhoneWallet()
    account = create(device, phone)
    fund(chain_node, mine, device, account, "0.2")
    spend = device.call("POST", f"/v1/accounts/{account['account_id']}/spends",
                        {"outputs": [{"address": chain_node.faucet.getnewaddress(), "amount_sat": 100_000}],
                         "fee_rate_sat_vb": 2})
    with pytest.raises(ApiError) as info:
        device.call("POST", f"/v1/spends/{spend['spend_id']}/signatures", {"psbt": spend["psbt"]})
    assert (info.value.status, info.value.code) == (422, "platform_signature_missing")
    assert device.call("GET", f"/v1/spends/{spend['spend_id']}")["state"] == "built"
    cancelled = device.call("DELETE", f"/v1/spends/{spend['spend_id']}")
    assert cancelled["state"] == "cancelled"


def test_fee_share_cap_applies_when_building(device, chain_node, mine):
    account = create(device, PhoneWallet())
    fund(chain_node, mine, device, account, "0.2")
    with pytest.raises(ApiError) as info:
        device.call("POST", f"/v1/accounts/{account['account_id']}/spends",
                    {"outputs": [{"address": chain_node.faucet.getnewaddress(), "amount_sat": 1_000}],
                     "fee_rate_sat_vb": 20})
    assert (info.value.status, info.value.code) == (422, "fee_share_too_high")
    assert info.value.details["external_sat"] == 1_000
    # the refused build gave its (only) coin back: a sane spend can use it
    ok = device.call("POST", f"/v1/accounts/{account['account_id']}/spends",
                     {"outputs": [{"address": chain_node.faucet.getnewaddress(), "amount_sat": 1_000_000}],
                      "fee_rate_sat_vb": 2})
    assert ok["state"] == "built" and len(ok["inputs"]) == 1


def test_spend_request_validation(device, chain_node, mine):
    account = create(device, PhoneWallet())
    aid = account["account_id"]
    for outputs, code in [([{"address": "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx", "amount_sat": 10_000}], "wrong_network"),
                          ([{"address": "not-an-address-at-all", "amount_sat": 10_000}], "invalid_address"),
                          ([{"address": chain_node.faucet.getnewaddress(), "amount_sat": 100}], "dust_output")]:
        with pytest.raises(ApiError) as info:
            device.call("POST", f"/v1/accounts/{aid}/spends", {"outputs": outputs})
        assert info.value.code == code
    with pytest.raises(ApiError) as info:  # nothing funded yet
        device.call("POST", f"/v1/accounts/{aid}/spends",
                    {"outputs": [{"address": chain_node.faucet.getnewaddress(), "amount_sat": 10_000}]})
    assert (info.value.status, info.value.code) == (422, "insufficient_funds")


def test_idempotency_key_on_create(device):
    phone = PhoneWallet()
    body = phone.account_request("idem")
    s1, _, a1 = device.request("POST", "/v1/accounts", body, headers={"Idempotency-Key": "abc-1"})
    s2, h2, a2 = device.request("POST", "/v1/accounts", body, headers={"Idempotency-Key": "abc-1"})
    assert (s1, s2) == (201, 201) and a1["account_id"] == a2["account_id"]
    assert h2.get("Idempotent-Replayed") == "true"
    assert len(device.call("GET", "/v1/accounts")) == 1
    other = phone.account_request("different")
    s3, _, err = device.request("POST", "/v1/accounts", other, headers={"Idempotency-Key": "abc-1"})
    assert s3 == 422 and err["error"]["code"] == "idempotency_key_reused"


def test_gap_limit(device):
    account = create(device, PhoneWallet())
    for i in range(20):
        assert device.call("POST", f"/v1/accounts/{account['account_id']}/addresses")["index"] == i
    with pytest.raises(ApiError) as info:
        device.call("POST", f"/v1/accounts/{account['account_id']}/addresses")
    assert (info.value.status, info.value.code) == (409, "gap_limit_reached")
    assert info.value.details == {"unused": 20, "gap_limit": 20}


def test_export_round_trip(device):
    account = create(device, PhoneWallet())
    aid = account["account_id"]
    first = [Descriptor.from_string(account["receive_descriptor"].split("#")[0]).derive(i).address(NET)
             for i in range(3)]
    exp = device.call("GET", f"/v1/accounts/{aid}/export?format=descriptors")["export"]
    assert [Descriptor.from_string(exp["receive"].split("#")[0]).derive(i).address(NET) for i in range(3)] == first
    assert {k["role"] for k in exp["keys"]} == {"platform", "recovery"}
    bsms = device.call("GET", f"/v1/accounts/{aid}/export?format=bsms")["export"].split("\n")
    assert bsms[0] == "BSMS 1.0" and bsms[2] == "/0/*,/1/*" and bsms[3] == first[0]
    assert Descriptor.from_string(bsms[1].split("#")[0].replace("/**", "/0/*")).derive(0).address(NET) == first[0]
    sparrow = device.call("GET", f"/v1/accounts/{aid}/export?format=sparrow")["export"]
    assert Descriptor.from_string(sparrow["descriptor"].split("#")[0]).derive(1).address(NET) == first[1]


def test_fee_estimates_for_every_target(device, chain_node, mine):
    fees = device.call("GET", "/v1/fees")
    assert set(fees["estimates"]) == {"1", "3", "6", "12", "24", "144"}
    for target, rate in fees["estimates"].items():
        # a number of sat/vB, or no estimate with bitcoind's reason
        assert (isinstance(rate, float) and rate > 0) or (rate is None and fees["errors"][target])
