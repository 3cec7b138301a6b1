"""What the benches share: scratch backends, percentiles, a funded devnet faucet and
funding an account's coins through the chain index.

Imported from this tree's bench/ directory, which the benches append to `sys.path` (never
put first: bench/messaging.py would shadow the messaging package), so a bench running an
older tree's server (`--root`) still uses these helpers.
Nothing here asserts; failures to set up raise SystemExit / RuntimeError with a reason.
"""
from __future__ import annotations

import os
import time
from decimal import Decimal

UTXO_SAT = 200_000           # every funded coin
FUND_PER_BLOCK = 19          # coins per funding block: below the receive gap limit (20)


def percentile(values, p):
    """The p-th percentile (nearest rank) of `values`; NaN for none."""
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def backend(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"


def scratch_backends(env: dict, environ: dict) -> dict:
    """Point `env` at BENCH_DATABASE_URL / BENCH_REDIS_URL when `environ` names them, and
    empty them first: a scratch PostgreSQL database loses its whole schema (so a tree at
    any revision migrates it from nothing), a Redis db is flushed (nonces, rate limits and
    the broker). Without them `env` is returned unchanged (the caller's SQLite and
    embedded broker). Returns `env`. Only for scratch backends: this destroys data."""
    if environ.get("BENCH_REDIS_URL"):
        import redis
        env["REDIS_URL"] = env["BROKER_URL"] = environ["BENCH_REDIS_URL"]
        redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    if environ.get("BENCH_DATABASE_URL"):
        env["DATABASE_URL"] = environ["BENCH_DATABASE_URL"]
        reset_database(env["DATABASE_URL"])
    return env


def reset_database(url: str) -> None:
    """Drop and recreate the public schema of a scratch PostgreSQL database."""
    from sqlalchemy import create_engine, text
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


def faucet(node, blocks: int = 150):
    """A devnet wallet `faucet` with `blocks` mined to it (spendable coinbase). Returns
    the wallet's RPC client."""
    node.call("createwallet", "faucet")
    wallet = node.for_wallet("faucet")
    node.call("generatetoaddress", blocks, wallet.call("getnewaddress"))
    return wallet


def fund(device, node, wallet, account_id: str, utxos: int, follow=None, timeout: float = 120) -> None:
    """`utxos` coins of UTXO_SAT to fresh receive addresses of the account (one block per
    FUND_PER_BLOCK), then wait until the chain index shows them confirmed (`follow()` runs
    a follower pass in process; otherwise the stack's worker follows the chain). Raises
    SystemExit when the index does not see them within `timeout` seconds."""
    addresses = {}
    while len(addresses) < utxos:
        batch = {}
        for _ in range(min(FUND_PER_BLOCK, utxos - len(addresses))):
            batch[device.call("POST", f"/v1/accounts/{account_id}/addresses")["address"]] = \
                Decimal(UTXO_SAT) / 100_000_000
        wallet.call("sendmany", "", batch)
        node.call("generatetoaddress", 1, wallet.call("getnewaddress"))
        addresses.update(batch)
        deadline = time.monotonic() + timeout
        while device.call("GET", f"/v1/accounts/{account_id}/balance")["confirmed"] < len(addresses) * UTXO_SAT:
            if time.monotonic() > deadline:
                raise SystemExit(f"the chain index did not see the funding blocks in {timeout:.0f} s")
            follow() if follow else time.sleep(0.2)


def amount_for(n_inputs: int) -> int:
    """An amount that needs exactly n coins of UTXO_SAT."""
    return UTXO_SAT * n_inputs - UTXO_SAT // 2 if n_inputs > 1 else UTXO_SAT // 2


class ProcessCpu:
    """CPU seconds (user + system) used by each process group of a stack (`Stack.procs`:
    api, worker, beat, devnet — each started in its own session) and by this process
    (the bench's clients), between `start()` and `stop()`. With `database_url` naming a
    PostgreSQL database, also its server processes serving that database ("postgres":
    the backends whose title names it; the bench's pooled connections live for the run)
    and, with `redis`, the Redis server ("redis": the whole server, which nothing else
    uses during a bench). Read from /proc, so Linux only; a process that exits inside the
    window takes its time with it (the stack's processes live for the whole run). Returns
    {name: seconds} from `stop()`."""

    def __init__(self, procs, database_url: str = "", redis: bool = False):
        self.groups = {proc.pid: name for name, proc in procs}
        self._tick = os.sysconf("SC_CLK_TCK")
        self._pg = None
        if database_url.startswith("postgresql"):
            from sqlalchemy.engine import make_url
            self._pg = f" {make_url(database_url).database} ".encode()
        self._redis = redis

    def _service(self, pid: str, comm: str) -> str | None:
        """"postgres" / "redis" for a server process this meter counts, else None."""
        if comm == "redis-server":
            return "redis" if self._redis else None
        if comm != "postgres" or self._pg is None:
            return None
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                return "postgres" if self._pg in fh.read() else None
        except OSError:
            return None

    def _read(self) -> dict[str, float]:
        out = {name: 0.0 for name in self.groups.values()}
        out.update({name: 0.0 for name, wanted in (("postgres", self._pg), ("redis", self._redis)) if wanted})
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    head, rest = fh.read().rsplit(")", 1)
            except OSError:
                continue
            fields = rest.split()
            name = self.groups.get(int(fields[2]))          # field 5: the process group
            if name is None and (self._pg is not None or self._redis):
                name = self._service(entry, head.split("(", 1)[1])     # the command name
            if name is not None:
                out[name] += (int(fields[11]) + int(fields[12])) / self._tick   # utime, stime
        t = os.times()
        out["bench client"] = t.user + t.system
        return out

    def start(self) -> "ProcessCpu":
        self._before = self._read()
        return self

    def stop(self) -> dict[str, float]:
        after = self._read()
        return {k: after[k] - self._before.get(k, 0.0) for k in after}
