"""Concurrent builds on one account (real PostgreSQL in CI: FOR UPDATE SKIP LOCKED):
50 builds at once over 60 coins all succeed with disjoint inputs and disjoint change
addresses; 50 builds at once over 30 coins give exactly 30 spends and 20
`insufficient_funds`, and no coin is ever reserved twice."""
from __future__ import annotations

import threading
from dataclasses import replace
from decimal import Decimal

from sqlalchemy import func, select

from chain.model import Coin
from client.phone import PhoneWallet
from client.sdk import CustosClient, DeviceKey
from store.session import session_scope
from tests.conftest import flask_transport

N = 50
COIN_SAT = 200_000


def _funded_account(app, chain_node, mine, coins: int):
    device = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app))
    device.register()
    account = device.call("POST", "/v1/accounts", PhoneWallet().account_request("busy"))
    aid = account["account_id"]
    funded = 0
    while funded < coins:  # issued below the gap limit, mined so the index sees them used
        batch = {device.call("POST", f"/v1/accounts/{aid}/addresses")["address"]: Decimal(COIN_SAT) / 100_000_000
                 for _ in range(min(19, coins - funded))}
        chain_node.faucet.sendmany("", batch)
        mine(1)
        funded += len(batch)
    assert device.call("GET", f"/v1/accounts/{aid}/balance")["confirmed"] == coins * COIN_SAT
    return device, aid


def _build_all(app, device, aid, addresses):
    results, start = [], threading.Barrier(len(addresses))

    def worker(address):
        client = CustosClient("http://localhost", device.key, device.device_id, transport=flask_transport(app))
        start.wait()
        results.append(client.request("POST", f"/v1/accounts/{aid}/spends",
                                      {"outputs": [{"address": address, "amount_sat": 100_000}],
                                       "fee_rate_sat_vb": 2}))

    threads = [threading.Thread(target=worker, args=(a,)) for a in addresses]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert len(results) == len(addresses)
    return results


def _lifted(app_factory, chain_settings):
    return app_factory(replace(chain_settings, ratelimit_device="10000/minute", ratelimit_ip="10000/minute"))


def test_fifty_concurrent_builds_never_share_a_coin(app_factory, chain_node, mine, chain_settings):
    app = _lifted(app_factory, chain_settings)
    device, aid = _funded_account(app, chain_node, mine, 60)
    results = _build_all(app, device, aid, [chain_node.faucet.getnewaddress() for _ in range(N)])
    assert [s for s, _, _ in results] == [201] * N, [b for s, _, b in results if s != 201][:3]
    inputs = [(i["txid"], i["vout"]) for _, _, b in results for i in b["inputs"]]
    assert len(inputs) == len(set(inputs)) == N          # one coin each, never the same one
    change = [o["change_index"] for _, _, b in results for o in b["outputs"] if o["change"]]
    assert len(change) == len(set(change)) == N          # and never the same change address
    with session_scope(chain_settings.database_url) as s:
        holders = s.execute(select(Coin.reserved_by, func.count()).where(Coin.account_id == aid,
                                                                        Coin.reserved_by.is_not(None))
                            .group_by(Coin.reserved_by)).all()
    assert len(holders) == N and all(count == 1 for _, count in holders)
    assert {h for h, _ in holders} == {b["spend_id"] for _, _, b in results}


def test_fifty_concurrent_builds_over_thirty_coins(app_factory, chain_node, mine, chain_settings):
    app = _lifted(app_factory, chain_settings)
    device, aid = _funded_account(app, chain_node, mine, 30)
    results = _build_all(app, device, aid, [chain_node.faucet.getnewaddress() for _ in range(N)])
    built = [b for s, _, b in results if s == 201]
    short = [b for s, _, b in results if s == 422]
    assert len(built) == 30 and len(short) == N - 30, [s for s, _, _ in results]
    assert all(b["error"]["code"] == "insufficient_funds" for b in short)
    inputs = [(i["txid"], i["vout"]) for b in built for i in b["inputs"]]
    assert len(inputs) == len(set(inputs)) == 30
    assert device.call("GET", f"/v1/accounts/{aid}/balance")["reserved_sat"] == 30 * COIN_SAT
