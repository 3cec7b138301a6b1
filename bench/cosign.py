"""Cosign benchmark: building a spend (`POST /v1/accounts/{id}/spends`) and submitting the
phone's signature (`POST /v1/spends/{id}/signatures`: inspect → policy → decrypt key →
sign → finalize → broadcast), measured separately, over real HTTP against the `make run`
stack (gunicorn, SQLite, devnet, worker; BENCH_DATABASE_URL / BENCH_REDIS_URL for a scratch
PostgreSQL database and a Redis db, both emptied first), with 1 or more concurrent clients.
On SQLite concurrent submits serialize on the database's single write lock (each holds it
from the account lock to commit); PostgreSQL locks one account row.

Each client owns its own account (concurrent cosigns on one account serialize on the
account lock by design). Phase 1: every client builds and phone-signs its spends (build
latency). Phase 2: all clients submit at once (submit latency, and submits/s over the
phase's wall time). Prints figures; never asserts.

    .venv/bin/python bench/cosign.py [--spends 20] [--clients 1,4] [--inputs 1,2] [--workers N]
    .venv/bin/python bench/cosign.py --compare <git rev> [--runs 3]   # old vs new, interleaved
    .venv/bin/python bench/cosign.py --profile [--spends 30]          # in process: where submit's CPU goes
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.append(str(HERE))   # last: bench/messaging.py must not shadow the messaging package
import kit  # noqa: E402  (this tree's helpers, whichever tree --root runs)

pct = kit.percentile
from cosign_inproc import InProcess, run_profile, run_statements  # noqa: E402,F401  (InProcess: bench/callgrind.py)


def _parse(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--spends", type=int, default=20, help="spends per client and shape")
    ap.add_argument("--clients", default="1,4", help="comma-separated concurrent client counts")
    ap.add_argument("--inputs", default="1,2", help="comma-separated input counts per spend")
    ap.add_argument("--workers", type=int, default=0, help="gunicorn workers (default: 2 x cores)")
    ap.add_argument("--warmup", type=int, default=3,
                    help="unmeasured spends per worker first (each gunicorn worker's first cosign imports "
                         "modules and compiles statements: a one-time cost per process, not per cosign)")
    ap.add_argument("--root", default=str(HERE.parent))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--compare", metavar="REV")
    ap.add_argument("--against", metavar="REV")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="in-process CPU profile of submit")
    ap.add_argument("--statements", action="store_true",
                    help="in process: SQL statements per submit (median), and the statements of one submit")
    return ap.parse_args(argv)


def run(args) -> dict:
    root = Path(args.root).resolve()
    sys.path.insert(0, str(root))
    from chain.rpc import BitcoinRPC
    from client.phone import PhoneWallet
    from client.sdk import CustosClient
    from tools.stack import Stack, embedded_env, free_port

    workers = args.workers or 2 * (os.cpu_count() or 1)
    var = Path(tempfile.mkdtemp(prefix="cosign-bench-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "BROKER_URL")}
    env = embedded_env(kit.scratch_backends(env, os.environ), var)   # BENCH_* scratch backends, emptied
    env.update(RATELIMIT_DEVICE="1000000/minute", RATELIMIT_IP="1000000/minute", LOG_LEVEL="WARNING",
               MASTER_KEY=base64.b64encode(os.urandom(32)).decode(),
               CHAIN_WATCH_INTERVAL="1")  # the follower sees each funding block within a second
    clients = [int(c) for c in args.clients.split(",")]
    shapes = [int(i) for i in args.inputs.split(",")]
    out: dict = {"workers": workers, "cores": os.cpu_count(),
                 "backend": kit.backend(env["DATABASE_URL"])}
    os.chdir(root)
    import tools.stack as stack_mod
    stack_mod.ROOT = root  # the stack runs this tree's code
    with Stack(env, "127.0.0.1", free_port(), workers=workers, quiet=True, var=var) as stack:
        node = BitcoinRPC(stack.env["BITCOIND_RPC_URL"], stack.env["BITCOIND_RPC_USER"],
                          stack.env["BITCOIND_RPC_PASSWORD"], timeout=120)
        faucet = kit.faucet(node, 150)
        device = CustosClient(stack.api_url)
        device.register()
        if args.warmup:
            _warm_up(device, node, faucet, PhoneWallet, workers, args.warmup)
        for n_inputs in shapes:
            for n_clients in clients:
                accounts = _funded_accounts(device, node, faucet, PhoneWallet,
                                            [f"b{n_inputs}-{n_clients}-{c}" for c in range(n_clients)],
                                            n_inputs * args.spends + 1)
                prepared = [[] for _ in accounts]
                build_lat, submit_lat, lock = [], [], threading.Lock()

                def build(k):
                    phone, account = accounts[k]
                    mine = []
                    for _ in range(args.spends):
                        spend_id, signed, seconds = _build_one(device, faucet, phone, account, n_inputs)
                        mine.append(seconds)
                        prepared[k].append((spend_id, signed))
                    with lock:
                        build_lat.extend(mine)

                def submit(k):
                    mine = []
                    for spend_id, signed in prepared[k]:
                        t = time.perf_counter()
                        result = device.call("POST", f"/v1/spends/{spend_id}/signatures", {"psbt": signed})
                        mine.append(time.perf_counter() - t)
                        if result["state"] != "broadcast":
                            raise RuntimeError(f"spend not broadcast: {result['state']}")
                    with lock:
                        submit_lat.extend(mine)

                for phase in (build, submit):
                    threads = [threading.Thread(target=phase, args=(k,)) for k in range(n_clients)]
                    cpu = kit.ProcessCpu(stack.procs, database_url=env["DATABASE_URL"],
                                         redis=bool(env.get("REDIS_URL"))).start()
                    started = time.perf_counter()
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                    wall = time.perf_counter() - started
                    if phase is build:
                        build_wall = wall
                    else:
                        submit_wall, submit_cpu = wall, cpu.stop()
                total = n_clients * args.spends
                if len(submit_lat) != total:
                    raise RuntimeError("some submits failed; see the stack's logs")
                out[f"{n_inputs}in_{n_clients}c"] = {
                    "build_p50_ms": 1000 * statistics.median(build_lat), "build_p99_ms": 1000 * pct(build_lat, 99),
                    "build_per_s": total / build_wall,
                    "submit_p50_ms": 1000 * statistics.median(submit_lat), "submit_p99_ms": 1000 * pct(submit_lat, 99),
                    "submit_per_s": total / submit_wall,
                    # CPU ms per submit in each process (the whole machine's work per cosign)
                    "submit_cpu_ms": {k: 1000 * v / total for k, v in submit_cpu.items()}}
                node.call("generatetoaddress", 1, faucet.call("getnewaddress"))
    return out


def _funded_accounts(device, node, faucet, PhoneWallet, names: list[str], coins: int) -> list:
    """[(phone, account)]: one new account per name, `coins` coins each, seen by the index."""
    accounts = []
    for name in names:
        phone = PhoneWallet()
        account = device.call("POST", "/v1/accounts", phone.account_request(name))
        kit.fund(device, node, faucet, account["account_id"], coins)
        accounts.append((phone, account))
    node.call("syncwithvalidationinterfacequeue")
    return accounts


def _build_one(device, faucet, phone, account, n_inputs: int) -> tuple[str, str, float]:
    """Build one spend of `n_inputs` coins and sign it on the phone: (spend id, signed
    PSBT, seconds the build request took)."""
    outputs = [{"address": faucet.call("getnewaddress"), "amount_sat": kit.amount_for(n_inputs)}]
    t = time.perf_counter()
    spend = device.call("POST", f"/v1/accounts/{account['account_id']}/spends", {"outputs": outputs, "fee_rate_sat_vb": 2})
    seconds = time.perf_counter() - t
    return spend["spend_id"], phone.sign(phone.verify_spend(account, spend, outputs)), seconds


def _warm_up(device, node, faucet, PhoneWallet, clients: int, spends: int) -> None:
    """`clients` concurrent clients (one per gunicorn worker, so each worker likely serves
    some) build and submit `spends` 1-input spends each, unmeasured."""
    accounts = _funded_accounts(device, node, faucet, PhoneWallet, [f"warm-{c}" for c in range(clients)], spends + 1)
    errors = []

    def one(phone, account):
        try:
            for _ in range(spends):
                spend_id, signed, _ = _build_one(device, faucet, phone, account, 1)
                device.call("POST", f"/v1/spends/{spend_id}/signatures", {"psbt": signed})
        except Exception as err:      # noqa: BLE001  (reported below, after every thread ended)
            errors.append(err)

    threads = [threading.Thread(target=one, args=a) for a in accounts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"warm-up failed: {errors[0]}")
    node.call("generatetoaddress", 1, faucet.call("getnewaddress"))


def show(r: dict, label: str = "") -> None:
    print(f"cosign bench {label}: gunicorn {r['workers']} workers, {r.get('backend', 'sqlite')}, devnet, "
          f"{r['cores']} cores")
    for key, v in r.items():
        if isinstance(v, dict):
            print(f"  {key:8s} build p50 {v['build_p50_ms']:6.1f} p99 {v['build_p99_ms']:6.1f} ms ({v['build_per_s']:5.1f}/s) | "
                  f"submit p50 {v['submit_p50_ms']:6.1f} p99 {v['submit_p99_ms']:6.1f} ms ({v['submit_per_s']:5.1f}/s)")
            if v.get("submit_cpu_ms"):
                print(f"  {'':8s} CPU ms per submit: " + _cpu_line(v["submit_cpu_ms"]))


def _cpu_line(cpu: dict) -> str:
    total = sum(cpu.values())
    return f"total {total:.1f} = " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]))


def run_compare(args) -> int:
    sys.path.insert(0, str(HERE.parent))
    from bench.compare import compare, medians
    extra = ["--spends", str(args.spends), "--clients", args.clients, "--inputs", args.inputs,
             "--warmup", str(args.warmup)]
    if args.workers:
        extra += ["--workers", str(args.workers)]
    runs = compare(Path(__file__), args.compare, args.runs, extra, args.against)
    old, new = medians(runs["old"]), medians(runs["new"])
    print(f"cosign, old = {args.compare} vs new = {args.against or 'working tree'}; medians of {args.runs} "
          f"interleaved runs, {args.spends} spends per client")
    print(f"  {'shape':8s} {'':6s} {'build p50':>9s} {'p99':>7s} {'submit p50':>10s} {'p99':>7s} {'submit/s':>8s}")
    for key in old:
        if not isinstance(old[key], dict):
            continue
        for name, r in (("old", old[key]), ("new", new.get(key, {}))):
            if r:
                print(f"  {key:8s} {name:6s} {r['build_p50_ms']:9.1f} {r['build_p99_ms']:7.1f} {r['submit_p50_ms']:10.1f} "
                      f"{r['submit_p99_ms']:7.1f} {r['submit_per_s']:8.1f}")
                if r.get("submit_cpu_ms"):
                    print(f"  {'':8s} {name:6s} CPU ms per submit: " + _cpu_line(r["submit_cpu_ms"]))
        if new.get(key):
            print(f"  {key:8s} submit/s new/old {new[key]['submit_per_s'] / old[key]['submit_per_s']:.2f}x")
    print(json.dumps({"old": old, "new": new}))
    return 0


def main(argv=None) -> int:
    args = _parse(argv)
    if args.compare:
        return run_compare(args)
    if args.profile:
        return run_profile(args)
    if args.statements:
        return run_statements(args)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        show(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
