"""End-to-end spend benchmark over real HTTP against the `make run` stack (gunicorn,
SQLite, devnet, Celery worker + beat following the chain): p50/p99 latency of

- build: `POST /v1/accounts/{id}/spends` (fee choice → coin selection over the chain
  index → reservation → previous transactions → PSBT with embit → inspection → policy
  preview → record), and
- submit: `POST /v1/spends/{id}/signatures` (inspect → index check → policy → decrypt
  key → sign → finalize → testmempoolaccept → broadcast),

for spends of 1, 5 and 50 inputs. Prints figures; never asserts.

    .venv/bin/python bench/cosign.py [--spends 20] [--inputs 1,5,50]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chain.rpc import BitcoinRPC  # noqa: E402
from client.phone import PhoneWallet  # noqa: E402
from client.sdk import CustosClient  # noqa: E402
from tools.stack import Stack, embedded_env, free_port  # noqa: E402

UTXO_SAT = 200_000


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def wait_indexed(device, aid: str, expect_sat: int, timeout: float = 120.0) -> None:
    """Until the chain index (the worker's follower) shows `expect_sat` confirmed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if device.call("GET", f"/v1/accounts/{aid}/balance")["confirmed"] >= expect_sat:
            return
        time.sleep(0.2)
    raise SystemExit(f"the index did not reach {expect_sat} sat in {timeout} s")


def fund(device, node, faucet, aid: str, count: int) -> None:
    """`count` coins of UTXO_SAT to fresh receive addresses (19 per block: gap limit)."""
    funded = 0
    while funded < count:
        batch = {}
        for _ in range(min(19, count - funded)):
            batch[device.call("POST", f"/v1/accounts/{aid}/addresses")["address"]] = Decimal(UTXO_SAT) / 100_000_000
        faucet.call("sendmany", "", batch)
        node.call("generatetoaddress", 1, faucet.call("getnewaddress"))
        funded += len(batch)
        wait_indexed(device, aid, funded * UTXO_SAT)


def line(label: str, samples: list[float]) -> str:
    return (f"{label} p50={statistics.median(samples):7.1f} ms  p99={pct(samples, 99):7.1f} ms  "
            f"min={min(samples):6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spends", type=int, default=20, help="spends per input count")
    parser.add_argument("--inputs", default="1,5,50", help="input counts, comma separated")
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="cosign-bench-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "BROKER_URL")}
    env = embedded_env(env, var)
    env.update(RATELIMIT_DEVICE="100000/minute", RATELIMIT_IP="100000/minute", LOG_LEVEL="WARNING",
               CHAIN_WATCH_INTERVAL="1")  # the follower sees each funding block within a second
    with Stack(env, "127.0.0.1", free_port(), workers=2, quiet=True, var=var) as stack:
        node = BitcoinRPC(stack.env["BITCOIND_RPC_URL"], stack.env["BITCOIND_RPC_USER"],
                          stack.env["BITCOIND_RPC_PASSWORD"], timeout=120)
        node.call("createwallet", "faucet")
        faucet = node.for_wallet("faucet")
        node.call("generatetoaddress", 120, faucet.call("getnewaddress"))
        device = CustosClient(stack.api_url)
        device.register()
        print(f"spend benchmark: {args.spends} spends per shape, gunicorn 2 workers, SQLite, devnet; "
              f"{os.cpu_count()} cores")
        for n_inputs in (int(n) for n in args.inputs.split(",")):
            phone = PhoneWallet()
            account = device.call("POST", "/v1/accounts", phone.account_request(f"bench{n_inputs}"))
            aid = account["account_id"]
            fund(device, node, faucet, aid, n_inputs * args.spends)
            # an amount that needs exactly n inputs of UTXO_SAT each (all coins are equal)
            amount = UTXO_SAT * n_inputs - UTXO_SAT // 2 if n_inputs > 1 else UTXO_SAT // 2
            builds, submits = [], []
            start = time.perf_counter()
            for _ in range(args.spends):
                outputs = [{"address": faucet.call("getnewaddress"), "amount_sat": amount}]
                t = time.perf_counter()
                spend = device.call("POST", f"/v1/accounts/{aid}/spends", {"outputs": outputs, "fee_rate_sat_vb": 2})
                builds.append((time.perf_counter() - t) * 1000)
                assert len(spend["inputs"]) == n_inputs, len(spend["inputs"])
                signed = phone.sign(phone.verify_spend(account, spend, outputs))
                t = time.perf_counter()
                result = device.call("POST", f"/v1/spends/{spend['spend_id']}/signatures", {"psbt": signed})
                submits.append((time.perf_counter() - t) * 1000)
                assert result["state"] == "broadcast", result
            wall = time.perf_counter() - start
            print(f"{n_inputs:2d}-input spends: {line('build', builds)} | {line('submit', submits)} | "
                  f"loop {args.spends / wall:5.1f} spends/s", flush=True)
            node.call("generatetoaddress", 1, faucet.call("getnewaddress"))


if __name__ == "__main__":
    main()
