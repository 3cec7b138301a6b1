"""Prices end to end, as with `PRICE_FIXED=USD:60000 make run`: the beat job refreshes the
price in the worker, the reference client shows fiat balances and history, and a USD
daily limit set with `policy set --limit 24h=500USD` is enforced at signing with the rate
recorded in the audit log."""
from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

from sqlalchemy import create_engine, text

from tests.e2e.test_accounts_e2e import ROOT, cli, wait_until


def cli_status(stack, state, *args) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "client", "--server", stack.api_url, "--state", str(state), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_fiat_balance_and_a_usd_daily_limit_with_the_reference_client(stack, stack_rpc, tmp_path):
    node, faucet = stack_rpc
    state = tmp_path / "phone.json"
    cli(stack, state, "register")
    aid = cli(stack, state, "account", "create", "--name", "fiat")["account_id"]
    faucet.call("sendtoaddress", cli(stack, state, "account", "receive", aid)["address"], Decimal("0.2"))
    node.call("generatetoaddress", 1, faucet.call("getnewaddress"))
    wait_until(lambda: cli(stack, state, "account", "balance", aid)["confirmed"], what="funds")

    price = wait_until(lambda: (r := cli_status(stack, state, "prices", "--currency", "USD"))[0] == 0
                       and json.loads(r[1]), what="the beat job's first price refresh")
    assert price["price"] == "60000.00" and price["stale"] is False
    assert [s["source"] for s in price["sources"]] == ["fixed"]
    balance = cli(stack, state, "account", "balance", aid, "--currency", "usd")
    assert balance["confirmed"] == 20_000_000
    assert (balance["fiat"]["currency"], balance["fiat"]["value"], balance["fiat"]["rate"]) == \
        ("USD", "12000.00", "60000.00")
    [received] = cli(stack, state, "account", "history", aid, "--currency", "USD")["transactions"]
    assert received["fiat"]["value"] == "12000.00"

    policy = cli(stack, state, "policy", "set", aid, "--limit", "24h=500USD")
    assert policy["rules"]["limits"] == [{"window": "24h", "max": "500.00", "currency": "USD"}]
    sent = cli(stack, state, "account", "send", aid, faucet.call("getnewaddress"), "800000", "--fee-rate", "2")
    assert sent["state"] == "broadcast"                                   # $480 of $500
    node.call("generatetoaddress", 1, faucet.call("getnewaddress"))       # spends use confirmed coins
    wait_until(lambda: cli(stack, state, "account", "balance", aid)["trusted_pending"] == 0 and
               cli(stack, state, "account", "balance", aid)["confirmed"], what="the change to confirm")
    status, _, err = cli_status(stack, state, "account", "send", aid, faucet.call("getnewaddress"), "100000",
                                "--fee-rate", "2")
    assert status == 1 and "policy_denied" in err                         # $60 more: over the limit

    engine = create_engine(stack.env["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT details FROM audit_events WHERE action = 'spend.decision' "
                                     "ORDER BY seq DESC LIMIT 2")).scalars().all()
    finally:
        engine.dispose()
    decisions = [json.loads(r) if isinstance(r, str) else r for r in rows]
    assert [(d["action"], d["rates"]["USD"]["rate"]) for d in decisions] == \
        [("deny", "60000.00"), ("approve", "60000.00")]
    assert decisions[0]["reasons"] == ["velocity_limit"]
