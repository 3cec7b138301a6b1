"""Messaging throughput and latency over real HTTP: send + fetch + ack.

Starts the API under gunicorn on a free port (embedded SQLite by default; PostgreSQL /
Redis when BENCH_DATABASE_URL / BENCH_REDIS_URL are given), registers sender/recipient
pairs that are contacts, then each of N client threads loops: send `--batch` 1 KiB
envelopes in one call, fetch its queue (≤ 100), acknowledge what it got (one
`POST /v1/messages/ack` per page when the server has it, else one DELETE per guid).
With `--worker` a Celery worker delivers the pushes each send records (notification row
+ broker publish), so the push path is part of the cost.

Prints messages/s, HTTP requests/s, p50/p99 per call, and the server's CPU (gunicorn
master + workers, from /proc) per request and per message; on PostgreSQL + Redis also their
servers' CPU per request (the backends serving the bench's database, and Redis). Never asserts.

    .venv/bin/python bench/messaging.py [--pairs 4] [--seconds 10] [--workers N] [--batch 10] [--worker]
    .venv/bin/python bench/messaging.py --compare <git rev> [--runs 3]   # old vs new, batch 1 and 10, interleaved
"""
from __future__ import annotations

import argparse
import base64
import json
import os
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

percentile = kit.percentile


def _parse(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=0, help="gunicorn workers (default: 2 x cores)")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=1, help="envelopes per send call")
    ap.add_argument("--worker", action="store_true", help="run a Celery worker delivering the pushes")
    ap.add_argument("--gunicorn", default="", help="extra gunicorn arguments, e.g. '--worker-class gthread --threads 4'")
    ap.add_argument("--root", default=str(HERE.parent), help="source tree whose server runs")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--compare", metavar="REV", help="old tree REV vs the working tree, batch 1 and --batch")
    ap.add_argument("--against", metavar="REV", help="with --compare: the new side (default: the working tree)")
    ap.add_argument("--runs", type=int, default=3)
    return ap.parse_args(argv)


def run(args) -> dict:
    root = Path(args.root).resolve()
    sys.path.insert(0, str(root))
    from client.messaging import MessagingClient
    from client.sdk import DeviceKey
    from tests.messaging_kit import key_upload
    from tools.stack import free_port, wait_http

    workers = args.workers or 2 * (os.cpu_count() or 1)
    tmp = Path(tempfile.mkdtemp(prefix="custos-bench-msg-"))
    db_url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{tmp / 'custos.db'}"
    env = {**os.environ, "CUSTOS_ENV": "test", "DATABASE_URL": db_url, "LOG_JSON": "1", "LOG_LEVEL": "WARNING",
           "BITCOIND_RPC_URL": "http://127.0.0.1:9", "RATELIMIT_ENABLED": "0",
           "BROKER_URL": f"sqla+sqlite:///{tmp / 'broker.db'}"}
    env.pop("REDIS_URL", None)
    kit.scratch_backends(env, os.environ)        # BENCH_* scratch backends, emptied first
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=root, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = free_port()
    procs = []
    api = subprocess.Popen([sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{port}",
                            "--workers", str(workers), "--log-level", "warning", *args.gunicorn.split()],
                           cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "api.log", "w"),
                           start_new_session=True)
    procs.append(api)
    if args.worker:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--concurrency", "1",
             "--without-gossip", "--without-mingle", "--loglevel", "WARNING", "-n", f"bench-{os.getpid()}@%h"],
            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "worker.log", "w"),
            start_new_session=True))
    try:
        url = f"http://127.0.0.1:{port}"
        if not wait_http(url + "/v1/health", 60, [api]):
            raise RuntimeError(f"API did not start; see {tmp / 'api.log'}")
        pairs = []
        for _ in range(args.pairs):
            a, b = MessagingClient(url, DeviceKey.generate()), MessagingClient(url, DeviceKey.generate())
            a.register(), b.register()
            b.upload_keys(key_upload(1)[0])
            a.accept_invite(b.create_invite("bench")["invite_code"])
            pairs.append((a, b))
        status, _h, _d = pairs[0][1].request("POST", "/v1/messages/ack", {"guids": ["probe"]})
        ack_many = status == 200
        payload = base64.b64encode(os.urandom(args.size)).decode()
        lat = {"send": [], "fetch": [], "ack": []}
        counts = {"messages": 0, "requests": 0}
        lock = threading.Lock()
        warm_until = time.perf_counter() + 1.0
        stop_at = warm_until + args.seconds
        cpu = {}

        def loop(sender, receiver):
            mine = {"send": [], "fetch": [], "ack": []}
            n = reqs = 0
            envelopes = [{"to": receiver.device_id, "ciphertext": payload}] * args.batch
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    break
                measuring = t0 >= warm_until
                sender.send_envelopes(envelopes)
                t1 = time.perf_counter()
                page = receiver.fetch_messages(100)
                t2 = time.perf_counter()
                guids = [m["guid"] for m in page["messages"]]
                acks = []
                if guids and ack_many:
                    receiver.ack_many(guids)
                    acks.append(time.perf_counter() - t2)
                else:
                    for g in guids:
                        t3 = time.perf_counter()
                        receiver.ack(g)
                        acks.append(time.perf_counter() - t3)
                if measuring:
                    mine["send"].append(t1 - t0)
                    mine["fetch"].append(t2 - t1)
                    mine["ack"] += acks
                    n += len(guids)
                    reqs += 2 + len(acks)
            with lock:
                for k in lat:
                    lat[k] += mine[k]
                counts["messages"] += n
                counts["requests"] += reqs

        def sample_cpu():
            time.sleep(max(0.0, warm_until - time.perf_counter()))
            meter = kit.ProcessCpu([(f"server{i}", p) for i, p in enumerate(procs)], database_url=db_url,
                                   redis="REDIS_URL" in env).start()
            time.sleep(max(0.0, stop_at - time.perf_counter()))
            cpu.update(meter.stop())
        threads = [threading.Thread(target=loop, args=p) for p in pairs] + [threading.Thread(target=sample_cpu)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = args.seconds
        services = ("bench client", "postgres", "redis")
        server_cpu = sum(v for k, v in cpu.items() if k not in services)   # API (+ worker)
        db_cpu = cpu.get("postgres", 0.0) + cpu.get("redis", 0.0)           # their servers, when used
        result = {
            "messages": counts["messages"], "msg_per_s": counts["messages"] / elapsed,
            "req_per_s": counts["requests"] / elapsed,
            "server_cpu_ms_per_request": 1000 * server_cpu / max(1, counts["requests"]),
            "server_cpu_ms_per_message": 1000 * server_cpu / max(1, counts["messages"]),
            "client_cpu_ms_per_request": 1000 * cpu.get("bench client", 0.0) / max(1, counts["requests"]),
            "db_cpu_ms_per_request": 1000 * db_cpu / max(1, counts["requests"]),
            "ack_many": ack_many, "batch": args.batch, "workers": workers, "gunicorn": args.gunicorn,
            "backend": "postgresql" if db_url.startswith("postgresql") else "sqlite",
            "push_worker": args.worker,
        }
        for k, v in lat.items():
            if v:
                result[f"{k}_p50_ms"] = statistics.median(v) * 1000
                result[f"{k}_p99_ms"] = percentile(v, 99) * 1000
        return result
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def show(r: dict, label: str = "") -> None:
    print(f"messaging {label}: {r['backend']}, gunicorn {r['workers']} workers, batches of {r['batch']}, "
          f"{'one ack call per page' if r['ack_many'] else 'one DELETE per message'}"
          f"{', Celery worker delivering pushes' if r['push_worker'] else ''}")
    print(f"  {r['msg_per_s']:.1f} msg/s, {r['req_per_s']:.0f} HTTP req/s; server CPU "
          f"{r['server_cpu_ms_per_request']:.2f} ms/request, {r['server_cpu_ms_per_message']:.2f} ms/message"
          + (f"; the bench's clients {r['client_cpu_ms_per_request']:.2f} ms/request"
             if "client_cpu_ms_per_request" in r else "")
          + (f"; PostgreSQL + Redis servers {r['db_cpu_ms_per_request']:.2f} ms/request"
             if r.get("db_cpu_ms_per_request") else ""))
    for k in ("send", "fetch", "ack"):
        if f"{k}_p50_ms" in r:
            print(f"  {k:5s} latency ms: p50 {r[f'{k}_p50_ms']:.1f}  p99 {r[f'{k}_p99_ms']:.1f}")


def run_compare(args) -> int:
    sys.path.insert(0, str(HERE.parent))
    import contextlib

    from bench.compare import ROOT, medians, run_json, worktree
    base = ["--pairs", str(args.pairs), "--seconds", str(args.seconds), "--size", str(args.size)]
    if args.workers:
        base += ["--workers", str(args.workers)]
    if args.worker:
        base.append("--worker")
    batches = sorted({1, args.batch})
    results: dict[str, list] = {}
    with worktree(args.compare) as old_root, \
            (worktree(args.against) if args.against else contextlib.nullcontext(ROOT)) as new_root:
        for i in range(args.runs):
            for batch in batches:
                for name, root in (("old", old_root), ("new", new_root)):
                    print(f"  run {i + 1}/{args.runs} {name} batch {batch} ...", file=sys.stderr, flush=True)
                    results.setdefault(f"{name} batch {batch}", []).append(
                        run_json(Path(__file__), root, base + ["--batch", str(batch)]))
    summary = {k: medians(v) for k, v in results.items()}
    print(f"messaging, old = {args.compare} vs new = {args.against or 'working tree'}: medians of {args.runs} "
          f"interleaved runs, {args.pairs} pairs, {args.seconds:.0f} s each")
    print(f"  {'variant':16s} {'msg/s':>8s} {'req/s':>7s} {'cpu ms/req':>10s} {'cpu ms/msg':>10s} "
          f"{'db ms/req':>9s} {'send p99':>8s} {'fetch p99':>9s} {'ack p99':>8s}")
    for k, r in summary.items():
        print(f"  {k:16s} {r['msg_per_s']:8.1f} {r['req_per_s']:7.0f} {r['server_cpu_ms_per_request']:10.2f} "
              f"{r['server_cpu_ms_per_message']:10.2f} {r.get('db_cpu_ms_per_request', 0):9.2f} "
              f"{r.get('send_p99_ms', 0):8.1f} {r.get('fetch_p99_ms', 0):9.1f} {r.get('ack_p99_ms', 0):8.1f}")
    old1 = summary.get("old batch 1", {}).get("msg_per_s")
    for k, r in summary.items():
        if old1 and k.startswith("new"):
            print(f"  {k}: {r['msg_per_s'] / old1:.1f}x old batch 1")
    print(json.dumps(summary))
    return 0


def main(argv=None) -> int:
    args = _parse(argv)
    if args.compare:
        return run_compare(args)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        show(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
