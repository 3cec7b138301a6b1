"""End-to-end cosign benchmark: requests/s and p50/p99 latency of
`POST /v1/spends/{id}/signatures` (inspect → policy → decrypt key → sign → finalize →
testmempoolaccept → broadcast) for 1-, 2- and 5-input spends, over real HTTP against
the `make run` stack (gunicorn, SQLite, devnet). Prints figures; never asserts.

    .venv/bin/python bench/cosign.py [--spends 30]
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spends", type=int, default=30, help="spends per input count")
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="cosign-bench-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "BROKER_URL")}
    env = embedded_env(env, var)
    env.update(RATELIMIT_DEVICE="100000/minute", RATELIMIT_IP="100000/minute", LOG_LEVEL="WARNING")
    with Stack(env, "127.0.0.1", free_port(), workers=2, quiet=True, var=var) as stack:
        node = BitcoinRPC(stack.env["BITCOIND_RPC_URL"], stack.env["BITCOIND_RPC_USER"],
                          stack.env["BITCOIND_RPC_PASSWORD"], timeout=120)
        node.call("createwallet", "faucet")
        faucet = node.for_wallet("faucet")
        node.call("generatetoaddress", 120, faucet.call("getnewaddress"))
        device = CustosClient(stack.api_url)
        device.register()
        print(f"cosign benchmark: {args.spends} spends per shape, gunicorn 2 workers, SQLite, devnet; "
              f"{os.cpu_count()} cores")
        for n_inputs in (1, 2, 5):
            phone = PhoneWallet()
            account = device.call("POST", "/v1/accounts", phone.account_request(f"bench{n_inputs}"))
            aid = account["account_id"]
            need = n_inputs * args.spends
            addresses = {}
            while len(addresses) < need:
                batch = {}
                for _ in range(min(19, need - len(addresses))):
                    batch[device.call("POST", f"/v1/accounts/{aid}/addresses")["address"]] = \
                        Decimal(UTXO_SAT) / 100_000_000
                faucet.call("sendmany", "", batch)
                node.call("generatetoaddress", 1, faucet.call("getnewaddress"))
                addresses.update(batch)
            node.call("syncwithvalidationinterfacequeue")
            # amount that needs exactly n inputs of UTXO_SAT each
            amount = UTXO_SAT * n_inputs - UTXO_SAT // 2 if n_inputs > 1 else UTXO_SAT // 2
            latencies = []
            start = time.perf_counter()
            for _ in range(args.spends):
                dest = faucet.call("getnewaddress")
                outputs = [{"address": dest, "amount_sat": amount}]
                spend = device.call("POST", f"/v1/accounts/{aid}/spends", {"outputs": outputs, "fee_rate_sat_vb": 2})
                signed = phone.sign(phone.verify_spend(account, spend, outputs))
                t = time.perf_counter()
                result = device.call("POST", f"/v1/spends/{spend['spend_id']}/signatures", {"psbt": signed})
                latencies.append((time.perf_counter() - t) * 1000)
                assert result["state"] == "broadcast", result
                assert len(spend["inputs"]) >= n_inputs
            wall = time.perf_counter() - start
            print(f"{n_inputs}-input spends: cosign p50={statistics.median(latencies):7.1f} ms  "
                  f"p99={pct(latencies, 99):7.1f} ms  min={min(latencies):6.1f} ms  "
                  f"cosign-only rate={1000 / statistics.mean(latencies):6.1f} req/s  "
                  f"(build+sign+cosign loop {args.spends / wall:5.1f} spends/s)", flush=True)
            node.call("generatetoaddress", 1, faucet.call("getnewaddress"))


if __name__ == "__main__":
    main()
