"""Chain index benchmark on PostgreSQL: what a block, a mempool pass, account creation,
balance/history reads and an idle pass cost as the number of accounts grows.

Builds a scratch database (BENCH_DATABASE_URL's server, default the local
postgres@127.0.0.1:5432) with N synthetic accounts (40 watched scripts each; --paid of
them are real 2-of-3 P2WSH accounts whose scripts are derived from descriptors), then
feeds the block follower, through a fake node that serves Core's JSON (getblock 3):
- one block of --txs transactions / --outputs outputs, --paying of which pay watched
  scripts (each the next unused index of a paid account: one refill derivation each)
  and --spending of which spend known coins;
- one mempool pass of --mempool transactions (10% relevant);
- passes over a busy mempool (--busy transactions known, --churn new and --churn/4
  evicted before each pass), taking a getrawmempool snapshot each time ("full") and
  following the ZMQ feed (chain.feed, "feed"), interleaved, medians of --passes;
and times account creation (the service, no HTTP), balance and history of an account
with 1,000 transactions, and an idle pass. Prints figures; never asserts.

    .venv/bin/python bench/chain_index.py                      # 10,000 accounts (make bench)
    .venv/bin/python bench/chain_index.py --accounts 100000
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import services  # noqa: E402
from tests.unit.chain_kit import FakeNode, foreign_script, tx  # noqa: E402

NOW = dt.datetime.now(dt.timezone.utc)


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB (Linux /proc)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


class JsonNode(FakeNode):
    """The fake node, with every answer going through JSON text as over HTTP."""

    def call(self, method, *params):
        return json.loads(json.dumps(super().call(method, *params), default=str), parse_float=Decimal)

    def batch(self, calls):
        self.calls.append("batch")
        out = []
        for m, p in calls:
            try:
                out.append(json.loads(json.dumps(getattr(self, f"rpc_{m}")(*p), default=str), parse_float=Decimal))
            except Exception as err:  # noqa: BLE001 - RPCError instances are answers too
                out.append(err)
        return out


def wsh_descriptors(n: int):
    """n (receive, change) 2-of-3 sortedmulti descriptors from fresh keys (no private part kept)."""
    from embit.bip32 import HDKey
    from embit.networks import NETWORKS
    net = NETWORKS["regtest"]
    out = []
    for _ in range(n):
        keys = []
        for _k in range(3):
            root = HDKey.from_seed(os.urandom(32), version=net["xprv"])
            acct = root.derive("m/48h/1h/0h/2h").to_public().to_base58(net["xpub"])
            keys.append(f"[{root.my_fingerprint.hex()}/48h/1h/0h/2h]{acct}")
        out.append(tuple(f"wsh(sortedmulti(2,{','.join(k + f'/{b}/*' for k in keys)}))" for b in (0, 1)))
    return out


def load_accounts(url: str, n: int, paid: int) -> list[tuple[str, str, str]]:
    """n accounts: `paid` real ones (registered through chain.scripts), the rest with
    40 random P2WSH-shaped scripts each (COPY). Returns the paid (id, receive, change)."""
    import psycopg
    from chain import scripts
    from store.session import session_scope
    from tests.unit.chain_kit import add_account
    real = [add_account(url, d) for d in wsh_descriptors(paid)]
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq) as conn:
        device = real[0][0].replace("acct", "dev")
        conn.execute("INSERT INTO devices (id, key_type, public_key, key_fingerprint, created_at) "
                     "VALUES (%s, 'ed25519', %s, %s, now())", (device, b"k" * 32, os.urandom(16).hex()))
        with conn.cursor().copy("COPY accounts (id, owner_device_id, name, network, template, receive_descriptor, "
                                "next_receive_index, created_at) FROM STDIN") as cp:
            for i in range(n - paid):
                cp.write_row((f"acct_syn{i:09d}", device, "s", "regtest", "watch_only", "addr(synthetic)", 0, NOW))
        with conn.cursor().copy("COPY chain_branches (account_id, branch, descriptor, ranged, derived_to, "
                                "next_index) FROM STDIN") as cp:
            for i in range(n - paid):
                cp.write_row((f"acct_syn{i:09d}", 0, "addr(synthetic)", False, 39, 0))
        with conn.cursor().copy("COPY chain_scripts (script, account_id, branch, index, used) FROM STDIN") as cp:
            for i in range(n - paid):
                aid = f"acct_syn{i:09d}"
                for j in range(40):
                    cp.write_row((b"\x00\x20" + os.urandom(32), aid, 0, j, False))
        conn.execute("ANALYZE")
    del scripts, session_scope
    return real


def known_coins(url: str, real, count: int) -> list[tuple[str, int, int, bytes]]:
    """`count` confirmed coins of the paid accounts (at their change index 0)."""
    from chain.derive import script_deriver
    from chain.model import Coin
    from store.session import session_scope
    out = []
    with session_scope(url) as s:
        for i in range(count):
            aid, _r, change = real[i % len(real)]
            spk = script_deriver(change)(0)
            t = os.urandom(32).hex()
            s.add(Coin(txid=t, vout=0, account_id=aid, amount_sat=100_000, script=spk, branch=1, index=0,
                       coinbase=False, own_change=False, block_height=0, block_hash="00" * 32, first_seen=NOW))
            out.append((t, 0, 100_000, spk))
    return out


def big_block(real, coins, n_txs: int, n_outputs: int, n_paying: int, index: int) -> list[dict]:
    from chain.derive import script_deriver
    paying = [script_deriver(real[i % len(real)][1])(index) for i in range(n_paying)]
    per_tx = max(1, n_outputs // n_txs)
    txs, extra = [], n_outputs - per_tx * n_txs
    for i in range(n_txs):
        inputs = [coins[i]] if i < len(coins) else [(os.urandom(32).hex(), 0, 1_000_000, foreign_script())]
        outs = [(1_000, foreign_script()) for _ in range(per_tx + (1 if i < extra else 0))]
        if len(coins) <= i < len(coins) + n_paying:
            outs[0] = (10_000, paying[i - len(coins)])
        txs.append(tx(inputs, outs))
    return txs


def bench_block(url, node, follower, real, args) -> None:
    coins = known_coins(url, real, args.spending)
    node.mine(big_block(real, coins, args.txs, args.outputs, args.paying, 0))
    node.calls.clear()
    report = follower.run_once(mempool=False)
    rss, peak = rss_mb()
    from chain.derive import script_deriver
    t0 = time.perf_counter()
    for aid, receive, _c in real[:args.paying]:
        script_deriver(receive)(10_000)              # the same work as one refill derivation
    derive_s = (time.perf_counter() - t0) * args.paying / max(1, min(args.paying, len(real)))
    outputs = sum(len(t["vout"]) for t in node.blocks[node.active[-1]]["tx"])
    print(f"block: {args.txs} txs / {outputs} outputs, {args.paying} paying watched scripts, "
          f"{args.spending} spending known coins")
    print(f"  seconds per block      {report.block_seconds[-1]:.3f}  (fetch + JSON + match + write + commit; "
          f"of which ≈{derive_s:.2f} s deriving the {args.paying} refill scripts)")
    print(f"  rows written           {report.rows_written}  (+ {args.paying} refill scripts derived)")
    print(f"  RPCs                   {len(node.calls)}")
    print(f"  follower RSS           {rss:.0f} MB now, {peak:.0f} MB peak (whole bench process)")


def bench_mempool(node, follower, real, n: int) -> None:
    from chain.derive import script_deriver
    for i in range(n):
        out = [(5_000, foreign_script()), (4_000, foreign_script())]
        if i % 10 == 0:
            out[1] = (4_000, script_deriver(real[(i // 10) % len(real)][1])(1))
        node.broadcast(tx([(os.urandom(32).hex(), 0, 10_000, foreign_script())], out))
    t0 = time.perf_counter()
    report = follower.run_once()
    print(f"mempool pass: {n} new transactions ({n // 10} relevant) in {time.perf_counter() - t0:.3f} s "
          f"(recorded {report.mempool_new})")


def bench_busy_mempool(url, node, follower, real, busy: int, churn: int, passes: int) -> None:
    """A mainnet-sized mempool: what one pass costs with a snapshot and with the feed."""
    import psycopg
    from chain.derive import script_deriver
    from chain.feed import FeedWriter
    node.mine()
    follower.run_once()
    txids = [os.urandom(32).hex() for _ in range(busy)]
    for t in txids:   # known to the index already: a snapshot pass fetches none of them
        node.mempool[t] = {"txid": t}
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        with conn.cursor().copy("COPY chain_mempool (txid, relevant, seen_at) FROM STDIN") as cp:
            for t in txids:
                cp.write_row((t, False, NOW))
    follower.run_once()
    writer = FeedWriter(url)
    feeding = [False]

    def pump(gap=False):
        batch = node.drain()
        if feeding[0] or gap:
            writer.record(batch, gap)

    def one(mode: str, i: int) -> tuple[float, int, int]:
        if mode == "feed" and not feeding[0]:
            feeding[0] = True
            pump(gap=True)
            follower.run_once()                               # the snapshot the feed continues
        elif mode == "full" and feeding[0]:
            feeding[0] = False
            writer.stopped()
            follower.run_once()
        for j in range(churn):
            out = [(5_000, foreign_script()), (4_000, foreign_script())]
            if j % 10 == 0:
                out[1] = (4_000, script_deriver(real[(i * churn + j) % len(real)][1])(2 + i))
            node.broadcast(tx([(os.urandom(32).hex(), 0, 10_000, foreign_script())], out))
        for t in list(node.mempool)[:max(1, churn // 4)]:
            node.evict(t)
        pump()
        node.calls.clear()
        t0 = time.perf_counter()
        report = follower.run_once()
        assert report.mempool_mode == mode, report.mempool_mode
        return (time.perf_counter() - t0) * 1000, len(node.calls), report.mempool_new
    got = {"full": [], "feed": []}
    for i in range(passes):
        for mode in (("full", "feed") if i % 2 == 0 else ("feed", "full")):
            got[mode].append(one(mode, i))
    size = len(json.dumps({"txids": list(node.mempool), "mempool_sequence": node.sequence}))
    for mode, runs in got.items():
        print(f"busy mempool pass ({len(node.mempool)} transactions, {churn} new + {max(1, churn // 4)} gone), "
              f"{mode}: median {statistics.median(r[0] for r in runs):.1f} ms over {passes}, "
              f"{runs[-1][1]} RPC(s), {runs[-1][2]} fetched"
              + (f", getrawmempool answer {size / 1e6:.1f} MB" if mode == "full" else ""))


def bench_idle(node, follower) -> None:
    follower.run_once()
    node.calls.clear()
    t0 = time.perf_counter()
    follower.run_once()
    print(f"idle pass: {len(node.calls)} RPCs ({', '.join(node.calls)}) in {(time.perf_counter() - t0) * 1000:.1f} ms")


def bench_account_creation(url: str, samples: int) -> None:
    from config.settings import Settings
    from cosigner import accounts
    from cosigner.context import CosignerContext
    from cosigner.psbt import FeeCaps
    from cosigner.vault import keyring_from_settings
    from client.phone import PhoneWallet
    from store.session import session_scope
    from tests.unit.chain_kit import add_account
    settings = Settings.from_env({"DATABASE_URL": url, "CUSTOS_ENV": "test",
                                  "MASTER_KEY": base64.b64encode(os.urandom(32)).decode()})
    ctx = CosignerContext("regtest", "b-", FeeCaps(), keyring_from_settings(settings), None,
                          lambda *a: None, import_descriptors=False)
    owner = add_account(url)[0]
    with session_scope(url) as s:
        from cosigner.model import Account
        device = s.get(Account, owner).owner_device_id
    body = {**PhoneWallet().account_request("bench"), "name": "bench"}
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        with session_scope(url) as s:
            accounts.create(s, ctx, device_id=device, body=body, now=NOW)
        times.append((time.perf_counter() - t0) * 1000)
    print(f"account creation (service + commit, 2-of-3, 40 scripts): p50 {pct(times, 50):.1f} ms, "
          f"p99 {pct(times, 99):.1f} ms over {samples}")


def bench_reads(url: str, samples: int) -> None:
    import psycopg
    from chain import coins
    from store.session import session_scope
    from tests.unit.chain_kit import add_account
    aid = add_account(url)[0]
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq) as conn:
        with conn.cursor().copy("COPY chain_coins (txid, vout, account_id, amount_sat, script, branch, index, coinbase, "
                                "own_change, block_height, block_hash, spent_by_txid, first_seen) FROM STDIN") as cp:
            for i in range(1_000):
                cp.write_row((os.urandom(32).hex(), 0, aid, 10_000 + i, b"\x00\x20" + os.urandom(32), 0, i % 40,
                              False, False, i, "00" * 32, os.urandom(32).hex() if i % 2 else None, NOW))
        with conn.cursor().copy("COPY chain_account_txs (account_id, txid, state, block_height, block_hash, block_pos, "
                                "block_time, received_sat, sent_sat, net_sat, first_seen, updated_at) FROM STDIN") as cp:
            for i in range(1_000):
                cp.write_row((aid, os.urandom(32).hex(), "deep", i, "00" * 32, 1, 1_600_000_000 + i, 10_000, 0,
                              10_000, NOW, NOW))
        conn.execute("ANALYZE")
    for name, fn in (("balance", lambda s: coins.balance(s, aid, NOW)),
                     ("history page (50)", lambda s: coins.history(s, aid, offset=0, limit=50))):
        times = []
        for _ in range(samples):
            t0 = time.perf_counter()
            with session_scope(url) as s:
                fn(s)
            times.append((time.perf_counter() - t0) * 1000)
        print(f"{name} of an account with 1,000 transactions: p50 {pct(times, 50):.2f} ms, "
              f"p99 {pct(times, 99):.2f} ms")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--paid", type=int, default=2_000, help="real 2-of-3 accounts (receive the payments)")
    ap.add_argument("--txs", type=int, default=3_000)
    ap.add_argument("--outputs", type=int, default=10_000)
    ap.add_argument("--paying", type=int, default=2_000)
    ap.add_argument("--spending", type=int, default=500)
    ap.add_argument("--mempool", type=int, default=5_000)
    ap.add_argument("--busy", type=int, default=50_000, help="mempool size of the busy-mempool passes")
    ap.add_argument("--churn", type=int, default=20, help="new transactions before each busy-mempool pass")
    ap.add_argument("--passes", type=int, default=7)
    ap.add_argument("--samples", type=int, default=200)
    args = ap.parse_args(argv)
    admin = os.environ.get("BENCH_DATABASE_URL") or services.postgres_url()
    if not admin or not admin.startswith("postgresql"):
        print("chain_index bench: needs PostgreSQL (BENCH_DATABASE_URL or postgres@127.0.0.1:5432); skipped")
        return 0
    import app.models  # noqa: F401
    from chain.follower import Follower
    from tests.dbutil import upgrade
    with services.scratch_database(admin, prefix="custos_bench_chain") as url:
        upgrade(url)
        t0 = time.perf_counter()
        real = load_accounts(url, args.accounts, min(args.paid, args.accounts))
        print(f"setup: {args.accounts} accounts ({len(real)} real 2-of-3), {args.accounts * 40} watched scripts "
              f"in {time.perf_counter() - t0:.0f} s")
        node = JsonNode()
        follower = Follower(node, url, start_height=0)
        follower.run_once(mempool=False)
        bench_block(url, node, follower, real, args)
        bench_mempool(node, follower, real, args.mempool)
        bench_idle(node, follower)
        bench_busy_mempool(url, node, follower, real, args.busy, args.churn, args.passes)
        bench_account_creation(url, args.samples)
        bench_reads(url, args.samples)
        from store.session import engine_for
        engine_for(url).dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
