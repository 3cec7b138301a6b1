"""A delayed spend over real HTTP with the reference client CLI, released by the beat
job (reconciler → run_job in the Celery worker) once its time has come, broadcast once.
The clock is controlled by moving the spend's acceptance and due times in the database,
not by waiting 24 hours."""
from __future__ import annotations

import json
import time
from decimal import Decimal

from sqlalchemy import create_engine, text

from tests.e2e.test_accounts_e2e import cli, wait_until


def test_delayed_spend_released_by_the_beat_job(stack, stack_rpc, tmp_path):
    node, faucet = stack_rpc
    state = tmp_path / "phone.json"
    cli(stack, state, "register")
    aid = cli(stack, state, "account", "create", "--name", "delayed")["account_id"]
    address = cli(stack, state, "account", "receive", aid)["address"]
    faucet.call("sendtoaddress", address, Decimal("0.2"))
    node.call("generatetoaddress", 1, faucet.call("getnewaddress"))
    wait_until(lambda: cli(stack, state, "account", "balance", aid)["confirmed"], what="funds")
    policy = cli(stack, state, "policy", "set", aid, json.dumps({"delay_all": True}))
    assert policy["rules"]["delay_all"] is True and policy["pending_change"] is None

    held = cli(stack, state, "account", "send", aid, faucet.call("getnewaddress"), "500000", "--fee-rate", "2")
    assert held["state"] == "delayed" and held["txid"] is None
    time.sleep(2.5)  # a few beat ticks: nothing is released before its time
    assert cli(stack, state, "spend", "show", held["spend_id"])["spend"]["state"] == "delayed"

    engine = create_engine(stack.env["DATABASE_URL"])
    try:
        with engine.begin() as conn:  # the clock moves past the 24 h delay for this spend
            # (the gate counts the delay from when the phone's signature was accepted)
            conn.execute(text("UPDATE spends SET release_at = :t, decided_at = :t WHERE id = :id"),
                         {"t": "2000-01-01 00:00:00.000000", "id": held["spend_id"]})
            conn.execute(text("UPDATE scheduled_jobs SET due_at = :t WHERE subject = :id"),
                         {"t": "2000-01-01 00:00:00.000000", "id": held["spend_id"]})
    finally:
        engine.dispose()
    released = wait_until(lambda: (s := cli(stack, state, "spend", "show", held["spend_id"])["spend"])["txid"] and s,
                          what="the beat job to release the spend")
    assert released["state"] == "broadcast"
    assert node.call("getrawmempool").count(released["txid"]) == 1
    time.sleep(2)  # more beat ticks: still exactly one broadcast, state unchanged
    again = cli(stack, state, "spend", "show", held["spend_id"])["spend"]
    assert again["txid"] == released["txid"] and again["state"] == "broadcast"
    node.call("generatetoaddress", 1, faucet.call("getnewaddress"))
