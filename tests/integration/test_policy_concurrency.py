"""Limits hold under concurrency: 50 simultaneous cosign requests against a 24 h limit
that allows exactly 10 → exactly 10 cosigned and broadcast, 40 denied with
velocity_limit, and the ledger sums exactly to the limit (real PostgreSQL in CI)."""
from __future__ import annotations

import threading
from dataclasses import replace
from decimal import Decimal

from sqlalchemy import func, select

from client.phone import PhoneWallet
from client.sdk import CustosClient, DeviceKey
from cosigner.model import COUNTED_STATES, Spend
from store.session import session_scope
from tests.conftest import flask_transport

N, ALLOWED, AMOUNT = 50, 10, 100_000


def test_fifty_concurrent_cosigns_against_a_limit_of_ten(app_factory, chain_node, mine, chain_settings):
    # one device sends ~170 requests here: lift the per-device/IP rate limits for the test
    chain_app = app_factory(replace(chain_settings, ratelimit_device="10000/minute", ratelimit_ip="10000/minute"))
    device = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(chain_app))
    device.register()
    phone = PhoneWallet()
    account = device.call("POST", "/v1/accounts", phone.account_request("busy"))
    aid = account["account_id"]
    funded = 0
    while funded < N:  # one UTXO per spend, issued below the gap limit
        batch = {device.call("POST", f"/v1/accounts/{aid}/addresses")["address"]: Decimal("0.002")
                 for _ in range(min(19, N - funded))}
        chain_node.faucet.sendmany("", batch)
        mine(1)
        funded += len(batch)
    device.call("PUT", f"/v1/accounts/{aid}/policy", {"limits": [{"window": "24h", "max_sat": ALLOWED * AMOUNT}]})

    signed = []
    for _ in range(N):
        outputs = [{"address": chain_node.faucet.getnewaddress(), "amount_sat": AMOUNT}]
        spend = device.call("POST", f"/v1/accounts/{aid}/spends", {"outputs": outputs, "fee_rate_sat_vb": 2})
        signed.append((spend["spend_id"], phone.sign(phone.verify_spend(account, spend, outputs))))
    assert len({s for s, _ in signed}) == N

    results, start = [], threading.Barrier(N)

    def worker(spend_id, psbt):
        client = CustosClient("http://localhost", device.key, device.device_id, transport=flask_transport(chain_app))
        start.wait()
        status, _, body = client.request("POST", f"/v1/spends/{spend_id}/signatures", {"psbt": psbt})
        results.append((status, body))

    threads = [threading.Thread(target=worker, args=pair) for pair in signed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == N
    ok = [b for s, b in results if s == 200]
    denied = [b for s, b in results if s == 422]
    assert len(ok) == ALLOWED and all(b["state"] == "broadcast" for b in ok)
    assert len(denied) == N - ALLOWED
    assert all(b["error"]["code"] == "policy_denied" and
               b["error"]["details"]["reasons"][0]["rule"] == "velocity_limit" for b in denied)
    mempool = set(chain_node.rpc().getrawmempool())
    assert all(b["txid"] in mempool for b in ok)
    with session_scope(chain_settings.database_url) as s:
        counted = s.scalar(select(func.sum(Spend.external_sat)).where(Spend.account_id == aid,
                                                                      Spend.state.in_(COUNTED_STATES)))
    assert counted == ALLOWED * AMOUNT
    mine(1)
