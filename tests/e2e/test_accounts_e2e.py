"""The phone's whole journey over real HTTP with the reference client CLI, against the
stack of `make run` (gunicorn, Celery worker + beat running the chain watcher, devnet):
create account → receive → mine → balance → spend → cosign → broadcast → mined →
history shows it confirmed."""
from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from client.sdk import CustosClient, DeviceKey
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def cli(stack, state, *args) -> dict:
    proc = subprocess.run([sys.executable, "-m", "client", "--server", stack.api_url, "--state", str(state), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def wait_until(fn, timeout=60.0, what="condition"):
    """tests.waiting.wait_for, polling every 0.3 s (each poll here runs the CLI)."""
    return wait_for(fn, what=what, timeout=timeout, interval=0.3)


def test_receive_spend_confirm_over_http(stack, stack_rpc, tmp_path):
    node, faucet = stack_rpc
    state = tmp_path / "phone.json"
    cli(stack, state, "register")
    account = cli(stack, state, "account", "create", "--name", "e2e")
    aid = account["account_id"]
    address = cli(stack, state, "account", "receive", aid)["address"]
    faucet.call("sendtoaddress", address, Decimal("0.3"))
    node.call("generatetoaddress", 1, faucet.call("getnewaddress"))
    balance = wait_until(lambda: (b := cli(stack, state, "account", "balance", aid))["confirmed"] and b,
                         what="confirmed balance")
    assert balance["confirmed"] == 30_000_000

    dest = faucet.call("getnewaddress")
    spend = cli(stack, state, "account", "send", aid, dest, "1000000", "--fee-rate", "3")
    assert spend["state"] == "broadcast"
    assert spend["txid"] in node.call("getrawmempool")
    node.call("generatetoaddress", 1, faucet.call("getnewaddress"))

    key_state = json.loads(state.read_text())
    sdk = CustosClient(stack.api_url, DeviceKey.from_pem(key_state["key_pem"].encode()), key_state["device_id"])
    confirmed = wait_until(lambda: sdk.call("GET", f"/v1/spends/{spend['spend_id']}")["state"] == "confirmed",
                           what="the worker's chain watcher to confirm the spend")
    assert confirmed
    history = cli(stack, state, "account", "history", aid)["transactions"]
    assert (history[0]["txid"], history[0]["direction"], history[0]["status"]) == (spend["txid"], "send", "confirmed")
    assert history[0]["amount_sat"] == 1_000_000 and history[0]["fee_sat"] == spend["fee_sat"]
    exported = cli(stack, state, "account", "export", aid, "--format", "bsms")["export"].split("\n")
    assert exported[3] == address  # the first receive address is index 0
