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
import secrets
import statistics
import subprocess
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


def _parse(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--spends", type=int, default=20, help="spends per client and shape")
    ap.add_argument("--clients", default="1,4", help="comma-separated concurrent client counts")
    ap.add_argument("--inputs", default="1,2", help="comma-separated input counts per spend")
    ap.add_argument("--workers", type=int, default=0, help="gunicorn workers (default: 2 x cores)")
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
        for n_inputs in shapes:
            for n_clients in clients:
                accounts = []
                for c in range(n_clients):
                    phone = PhoneWallet()
                    account = device.call("POST", "/v1/accounts", phone.account_request(f"b{n_inputs}-{n_clients}-{c}"))
                    kit.fund(device, node, faucet, account["account_id"], n_inputs * args.spends + 1)
                    accounts.append((phone, account))
                node.call("syncwithvalidationinterfacequeue")
                prepared = [[] for _ in accounts]
                build_lat, submit_lat, lock = [], [], threading.Lock()

                def build(k):
                    phone, account = accounts[k]
                    mine = []
                    for _ in range(args.spends):
                        outputs = [{"address": faucet.call("getnewaddress"), "amount_sat": kit.amount_for(n_inputs)}]
                        t = time.perf_counter()
                        spend = device.call("POST", f"/v1/accounts/{account['account_id']}/spends",
                                            {"outputs": outputs, "fee_rate_sat_vb": 2})
                        mine.append(time.perf_counter() - t)
                        prepared[k].append((spend["spend_id"], phone.sign(phone.verify_spend(account, spend, outputs))))
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
                    started = time.perf_counter()
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                    wall = time.perf_counter() - started
                    if phase is build:
                        build_wall = wall
                    else:
                        submit_wall = wall
                total = n_clients * args.spends
                if len(submit_lat) != total:
                    raise RuntimeError("some submits failed; see the stack's logs")
                out[f"{n_inputs}in_{n_clients}c"] = {
                    "build_p50_ms": 1000 * statistics.median(build_lat), "build_p99_ms": 1000 * pct(build_lat, 99),
                    "build_per_s": total / build_wall,
                    "submit_p50_ms": 1000 * statistics.median(submit_lat), "submit_p99_ms": 1000 * pct(submit_lat, 99),
                    "submit_per_s": total / submit_wall}
                node.call("generatetoaddress", 1, faucet.call("getnewaddress"))
    return out


def show(r: dict, label: str = "") -> None:
    print(f"cosign bench {label}: gunicorn {r['workers']} workers, {r.get('backend', 'sqlite')}, devnet, "
          f"{r['cores']} cores")
    for key, v in r.items():
        if isinstance(v, dict):
            print(f"  {key:8s} build p50 {v['build_p50_ms']:6.1f} p99 {v['build_p99_ms']:6.1f} ms ({v['build_per_s']:5.1f}/s) | "
                  f"submit p50 {v['submit_p50_ms']:6.1f} p99 {v['submit_p99_ms']:6.1f} ms ({v['submit_per_s']:5.1f}/s)")


def run_compare(args) -> int:
    sys.path.insert(0, str(HERE.parent))
    from bench.compare import compare, medians
    extra = ["--spends", str(args.spends), "--clients", args.clients, "--inputs", args.inputs]
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
        if new.get(key):
            print(f"  {key:8s} submit/s new/old {new[key]['submit_per_s'] / old[key]['submit_per_s']:.2f}x")
    print(json.dumps({"old": old, "new": new}))
    return 0


class InProcess:
    """A devnet subprocess, the app in this process (SQLite in a temp dir) and `spends`
    phone-signed 1-input spends of one account, ready to submit through the WSGI app.
    `submit(i)` posts the i-th; `close()` stops devnet."""

    def __init__(self, root: Path, spends: int):
        sys.path.insert(0, str(root))
        os.chdir(root)
        from tools.stack import free_port, wait_devnet_ready
        tmp = Path(tempfile.mkdtemp(prefix="cosign-inproc-"))
        port, password = free_port(), secrets.token_hex(8)
        python = os.environ.get("CUSTOS_BENCH_PYTHON") or sys.executable   # under valgrind: the controller's
        self.devnet = subprocess.Popen([python, "-m", "devnet", "--datadir", str(tmp / "devnet"), "--rpcport",
                                        str(port), "--rpcuser", "bench", "--rpcpassword", password,
                                        "--fallbackfee", "0.0002"],
                                       cwd=root, stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            if not wait_devnet_ready(self.devnet, 60):
                raise RuntimeError("devnet did not start")
            self._setup(root, tmp, port, password, spends)
        except BaseException:
            self.close()
            raise

    def _setup(self, root, tmp, port, password, spends):
        from app import create_app
        from chain.rpc import BitcoinRPC
        from client.phone import PhoneWallet
        from client.sdk import CustosClient
        from config.settings import Settings
        from tests.conftest import flask_transport
        from tests.dbutil import upgrade
        url = f"sqlite:///{tmp / 'custos.db'}"
        upgrade(url)
        settings = Settings.from_env({
            "CUSTOS_ENV": "test", "DATABASE_URL": url, "LOG_LEVEL": "WARNING", "RATELIMIT_ENABLED": "0",
            "BITCOIND_RPC_URL": f"http://127.0.0.1:{port}", "BITCOIND_RPC_USER": "bench",
            "BITCOIND_RPC_PASSWORD": password, "MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
            "BROKER_URL": f"sqla+sqlite:///{tmp / 'broker.db'}"})
        app = create_app(settings)
        from config.bootstrap import chain_follower
        follower = chain_follower(settings, lock_wait=30)
        node = BitcoinRPC(f"http://127.0.0.1:{port}", "bench", password, timeout=120)
        faucet = kit.faucet(node, 120)
        self.device = CustosClient("http://localhost", transport=flask_transport(app))
        self.device.register()
        phone = PhoneWallet()
        account = self.device.call("POST", "/v1/accounts", phone.account_request("profile"))
        kit.fund(self.device, node, faucet, account["account_id"], spends + 1, follow=follower.run_once)
        node.call("syncwithvalidationinterfacequeue")
        self.prepared = []
        for _ in range(spends):
            outputs = [{"address": faucet.call("getnewaddress"), "amount_sat": kit.amount_for(1)}]
            spend = self.device.call("POST", f"/v1/accounts/{account['account_id']}/spends",
                                     {"outputs": outputs, "fee_rate_sat_vb": 2})
            self.prepared.append((spend["spend_id"], phone.sign(phone.verify_spend(account, spend, outputs))))

    def submit(self, i: int) -> None:
        spend_id, signed = self.prepared[i]
        result = self.device.call("POST", f"/v1/spends/{spend_id}/signatures", {"psbt": signed})
        if result["state"] != "broadcast":
            raise RuntimeError(result)

    def close(self) -> None:
        self.devnet.terminate()
        self.devnet.wait(timeout=20)


class StatementCounter:
    """Counts the SQL statements every engine of this process sends (a SQLAlchemy
    `before_cursor_execute` listener; an executemany counts once). `start()` zeroes it;
    `statements` lists the first line of each since then."""

    def __init__(self):
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
        self.statements: list[str] = []
        event.listen(Engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn, _cursor, statement, _params, _context, _executemany):
        self.statements.append(("*" if self.held_since is not None else " ") + " ".join(statement.split())[:120])

    def start(self) -> None:
        self.statements, self.held_cpu, self.held_wall = [], 0.0, 0.0

    held_since = None

    def watch_writer_lock(self) -> None:
        """Also measure the SQLite writers' lock (store.session): CPU and wall time it is
        held, and which statements run under it (marked *): what serializes concurrent
        writers on SQLite."""
        from store import session as store_session
        conn_cls, counter = store_session.WriterQueueConnection, self
        take, give = conn_cls._before_statement, conn_cls._release_writer

        def before(conn, sql):
            took = take(conn, sql)
            if took:
                counter.held_since = (time.process_time(), time.perf_counter())
            return took

        def release(conn):
            if conn._lock_fd is not None and counter.held_since is not None:
                cpu, wall = counter.held_since
                counter.held_cpu += time.process_time() - cpu
                counter.held_wall += time.perf_counter() - wall
                counter.held_since = None
            give(conn)

        conn_cls._before_statement, conn_cls._release_writer = before, release


def run_statements(args) -> int:
    """In process (SQLite): SQL statements per submit of a 1-input spend, how many run
    under the writers' lock and how long it is held (medians over the submits after
    the first two), then the statements of the last one."""
    root = Path(args.root).resolve()
    bench = InProcess(root, args.spends)
    counter = StatementCounter()
    counter.watch_writer_lock()
    try:
        counts, locked, cpu, wall, last = [], [], [], [], []
        for i in range(args.spends):
            counter.start()
            bench.submit(i)
            if i >= 2:
                counts.append(len(counter.statements))
                locked.append(sum(1 for s in counter.statements if s.startswith("*")))
                cpu.append(1000 * counter.held_cpu)
                wall.append(1000 * counter.held_wall)
            last = counter.statements
        out = {"statements_per_submit": statistics.median(counts),
               "statements_under_writer_lock": statistics.median(locked),
               "writer_lock_cpu_ms": statistics.median(cpu), "writer_lock_wall_ms": statistics.median(wall)}
        if args.json:
            print(json.dumps(out))
            return 0
        print(f"submit in process ({root.name}, 1 input, SQLite): {out['statements_per_submit']:g} SQL statements "
              f"per submit (min {min(counts)}, max {max(counts)}), {out['statements_under_writer_lock']:g} of them "
              f"under the writers' lock, held {out['writer_lock_cpu_ms']:.2f} ms CPU / "
              f"{out['writer_lock_wall_ms']:.2f} ms wall per submit (medians); the last submit's (* = under the lock):")
        for line in last:
            print(f"    {line}")
    finally:
        bench.close()
    return 0


def run_profile(args) -> int:
    """In process: N phone-signed spends submitted through the WSGI app; the first half
    timed, the second half under a CPU-time profile (devnet's time is not in it)."""
    import cProfile
    import pstats
    root = Path(args.root).resolve()
    bench = InProcess(root, args.spends)
    try:
        prof = cProfile.Profile(time.process_time)
        cpu, wall = [], []
        half = args.spends // 2
        for i in range(args.spends):
            c0, w0 = time.process_time(), time.perf_counter()
            if i >= half:
                prof.enable()
            bench.submit(i)
            prof.disable()
            if 2 <= i < half:
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - w0)
        print(f"submit in process ({root.name}, 1 input, an account with up to {args.spends} earlier spends): "
              f"median {1000 * statistics.median(cpu):.2f} ms CPU, {1000 * statistics.median(wall):.2f} ms wall "
              f"(the rest of wall is devnet and fsync)")
        print(profile_buckets(pstats.Stats(prof)))
    finally:
        bench.close()
    return 0


COSIGN_BUCKETS = (
    ("embit HD derivation (bip32 child, base58)", ("embit/bip32.py", "embit/base58.py")),
    ("embit descriptors/miniscript/script", ("embit/descriptor", "embit/script.py")),
    ("embit PSBT/tx parse+serialize, sighash", ("embit/psbt.py", "embit/transaction.py", "embit/base.py",
                                                "embit/misc.py", "embit/compact.py")),
    ("secp256k1 (ctypes)", ("ctypes_secp256k1", "embit/ec.py")),
    ("sqlalchemy", ("sqlalchemy",)),
    ("sqlite3", ("sqlite3",)),
    ("bitcoind RPC client (json, http)", ("bitcoinrpc", "http/client.py", "json/", "socket")),
    ("flask/werkzeug/marshmallow", ("flask", "werkzeug", "marshmallow", "webargs")),
    ("vault (AES-GCM)", ("cosigner/vault.py", "cryptography")),
    ("policy", ("cosigner/policy",)),
    ("audit", ("audit/",)),
    ("custos other", ("/cosigner/", "/app/", "/chain/", "/devices/", "/messaging/", "/config/", "/store/")),
)


def profile_buckets(stats) -> str:
    total = stats.total_tt or 1e-9
    buckets: dict[str, float] = {}
    for (filename, _line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
        key = f"{filename}:{func}"
        name = next((n for n, marks in COSIGN_BUCKETS if any(m in key for m in marks)), "other (stdlib, builtins)")
        buckets[name] = buckets.get(name, 0.0) + tt
    lines = ["  CPU by package (own time):"]
    for name, tt in sorted(buckets.items(), key=lambda kv: -kv[1]):
        lines.append(f"    {100 * tt / total:5.1f}%  {name}")
    lines.append("  top functions (own time):")
    top = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:10]
    for (filename, line, func), (_cc, nc, tt, _ct, _c) in top:
        short = "/".join(Path(filename).parts[-2:]) if filename != "~" else "builtin"
        lines.append(f"    {100 * tt / total:5.1f}%  {func} ({short}:{line}) x{nc}")
    lines.append("  cumulative, custos functions:")
    rows = []
    for (filename, line, func), (_cc, nc, _tt, ct, _c) in stats.stats.items():
        if any(d in filename for d in ("/cosigner/", "/chain/", "/audit/", "/app/auth/")) and ct / total > 0.02:
            rows.append((ct, f"{func} ({'/'.join(Path(filename).parts[-2:])}:{line}) x{nc}"))
    for ct, label in sorted(rows, reverse=True)[:18]:
        lines.append(f"    {100 * ct / total:5.1f}%  {label}")
    return "\n".join(lines)


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
