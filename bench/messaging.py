"""Messaging throughput and latency over real HTTP: send + fetch + ack.

Starts the API under gunicorn on a free port (embedded SQLite by default; PostgreSQL /
Redis when BENCH_DATABASE_URL / BENCH_REDIS_URL are given), registers sender/recipient
pairs that are contacts, then each of N client threads loops: send one 1 KiB envelope,
fetch its queue, ack what it got. Prints figures; never asserts.

    .venv/bin/python bench/messaging.py [--pairs 4] [--seconds 10] [--workers 4]
"""
from __future__ import annotations

import argparse
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from client.messaging import MessagingClient  # noqa: E402
from client.sdk import DeviceKey  # noqa: E402
from tools.stack import free_port, wait_http  # noqa: E402


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--size", type=int, default=1024)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="custos-bench-msg-"))
    db_url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{tmp / 'custos.db'}"
    env = {**os.environ, "CUSTOS_ENV": "test", "DATABASE_URL": db_url, "LOG_JSON": "1", "LOG_LEVEL": "WARNING",
           "BITCOIND_RPC_URL": "http://127.0.0.1:9", "RATELIMIT_ENABLED": "0",
           "BROKER_URL": f"sqla+sqlite:///{tmp / 'broker.db'}"}
    env.pop("REDIS_URL", None)
    if os.environ.get("BENCH_REDIS_URL"):
        env["REDIS_URL"] = env["BROKER_URL"] = os.environ["BENCH_REDIS_URL"]
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = free_port()
    api = subprocess.Popen([sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{port}",
                            "--workers", str(args.workers), "--log-level", "warning"],
                           cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "api.log", "w"),
                           start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        if not wait_http(url + "/v1/health", 60, [api]):
            print("API did not start; see", tmp / "api.log")
            return 1
        pairs = []
        for _ in range(args.pairs):
            a, b = MessagingClient(url, DeviceKey.generate()), MessagingClient(url, DeviceKey.generate())
            a.register(), b.register()
            from tests.messaging_kit import key_upload
            a.upload_keys(key_upload(1)[0])
            b.accept_invite(a.create_invite("bench")["invite_code"])
            pairs.append((a, b))
        payload = base64.b64encode(os.urandom(args.size)).decode()
        lat = {"send": [], "fetch": [], "ack": []}
        lock = threading.Lock()
        done = [0]
        stop_at = time.perf_counter() + args.seconds

        def loop(sender, receiver):
            mine = {"send": [], "fetch": [], "ack": []}
            n = 0
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                sender.send_envelopes([{"to": receiver.device_id, "ciphertext": payload}])
                t1 = time.perf_counter()
                page = receiver.fetch_messages(100)
                t2 = time.perf_counter()
                mine["send"].append(t1 - t0)
                mine["fetch"].append(t2 - t1)
                for m in page["messages"]:
                    t3 = time.perf_counter()
                    receiver.ack(m["guid"])
                    mine["ack"].append(time.perf_counter() - t3)
                    n += 1
            with lock:
                for k in lat:
                    lat[k] += mine[k]
                done[0] += n

        started = time.perf_counter()
        threads = [threading.Thread(target=loop, args=p) for p in pairs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        backend = "postgresql" if db_url.startswith("postgresql") else "sqlite"
        print(f"messaging bench: {args.pairs} sender/recipient pairs, gunicorn {args.workers} workers, "
              f"{backend}, {args.size} B ciphertext, {elapsed:.1f} s")
        print(f"  delivered (sent+fetched+acked): {done[0]} messages, {done[0] / elapsed:.1f} msg/s "
              f"({3 * done[0] / elapsed:.0f} HTTP req/s incl. fetch)")
        for k, v in lat.items():
            if v:
                print(f"  {k:5s} latency ms: p50 {statistics.median(v) * 1000:.1f}  p99 {percentile(v, 99) * 1000:.1f}"
                      f"  max {max(v) * 1000:.1f}  (n={len(v)})")
    finally:
        api.terminate()
        try:
            api.wait(timeout=20)
        except subprocess.TimeoutExpired:
            api.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
