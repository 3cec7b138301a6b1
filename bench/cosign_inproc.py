"""bench/cosign.py's in-process modes: `InProcess` (devnet in a subprocess, the app in this
process, phone-signed spends ready to submit through the WSGI app; also driven by
bench/callgrind.py), `--statements` (SQL statements per submit, those under SQLite's
writers' lock, and how long it is held) and `--profile` (where submit's CPU goes)."""
from __future__ import annotations

import base64
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.append(str(HERE))
import kit  # noqa: E402

pct = kit.percentile


class InProcess:
    """A devnet subprocess, the app in this process (SQLite in a temp dir, or the scratch
    BENCH_DATABASE_URL / BENCH_REDIS_URL) and `spends`
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
        env = kit.scratch_backends({          # BENCH_DATABASE_URL / BENCH_REDIS_URL: emptied first
            "CUSTOS_ENV": "test", "DATABASE_URL": f"sqlite:///{tmp / 'custos.db'}", "LOG_LEVEL": "WARNING",
            "RATELIMIT_ENABLED": "0", "BITCOIND_RPC_URL": f"http://127.0.0.1:{port}", "BITCOIND_RPC_USER": "bench",
            "BITCOIND_RPC_PASSWORD": password, "MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
            "BROKER_URL": f"sqla+sqlite:///{tmp / 'broker.db'}"}, os.environ)
        self.backend = "PostgreSQL" if env["DATABASE_URL"].startswith("postgresql") else "SQLite"
        upgrade(env["DATABASE_URL"])
        settings = Settings.from_env(env)
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
    """In process: SQL statements per submit of a 1-input spend and, on SQLite, how many
    run under the writers' lock and how long it is held (medians over the submits after
    the first two), then the statements of the last one. On PostgreSQL (BENCH_DATABASE_URL)
    the submit's CPU and wall time instead (its round trips are part of the wall)."""
    root = Path(args.root).resolve()
    bench = InProcess(root, args.spends)
    counter = StatementCounter()
    counter.watch_writer_lock()
    sqlite = bench.backend == "SQLite"
    try:
        counts, locked, cpu, wall, last = [], [], [], [], []
        for i in range(args.spends):
            counter.start()
            c0, w0 = time.process_time(), time.perf_counter()
            bench.submit(i)
            c1, w1 = time.process_time(), time.perf_counter()
            if i >= 2:
                counts.append(len(counter.statements))
                locked.append(sum(1 for s in counter.statements if s.startswith("*")))
                cpu.append(1000 * (counter.held_cpu if sqlite else c1 - c0))
                wall.append(1000 * (counter.held_wall if sqlite else w1 - w0))
            last = counter.statements
        timed = "writer_lock" if sqlite else "submit"      # what cpu/wall measured
        out = {"backend": bench.backend, "statements_per_submit": statistics.median(counts),
               f"{timed}_cpu_ms": statistics.median(cpu), f"{timed}_wall_ms": statistics.median(wall)}
        if sqlite:
            out["statements_under_writer_lock"] = statistics.median(locked)
        if args.json:
            print(json.dumps(out))
            return 0
        head = (f"submit in process ({root.name}, 1 input, {bench.backend}): {out['statements_per_submit']:g} SQL "
                f"statements per submit (min {min(counts)}, max {max(counts)})")
        if sqlite:
            print(f"{head}, {out['statements_under_writer_lock']:g} of them under the writers' lock, held "
                  f"{out['writer_lock_cpu_ms']:.2f} ms CPU / {out['writer_lock_wall_ms']:.2f} ms wall per submit "
                  f"(medians); the last submit's (* = under the lock):")
        else:
            print(f"{head}, {out['submit_cpu_ms']:.2f} ms CPU / {out['submit_wall_ms']:.2f} ms wall per submit "
                  f"(medians); the last submit's:")
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
    ("psycopg", ("psycopg",)),
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
