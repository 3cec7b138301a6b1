"""Figures for the security-review fixes (issue #14). Prints; never asserts.

1. Recovery start, known vs unknown email (L1): p50 of `POST /v1/recoveries` for each, and
   in how many of N interleaved pairs the known one was slower (≈ N/2 means no signal).
2. Console login cost (M4): one argon2 verification with the staff parameters, and the
   /v1/health latency while 4 threads post wrong passwords to /admin/login from one
   address (the per-address throttle stops them after 30 a minute).

In-process (Flask test client) on a scratch SQLite database, bitcoind absent.

    .venv/bin/python bench/hardening.py [--pairs 60]
"""
from __future__ import annotations

import argparse
import base64
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _app(tmp: Path, **env):
    from config.settings import Settings
    from app import create_app
    from tests.dbutil import upgrade
    url = f"sqlite:///{tmp / 'custos.db'}"
    upgrade(url)
    base = {"CUSTOS_ENV": "test", "DATABASE_URL": url, "LOG_JSON": "1", "LOG_LEVEL": "ERROR",
            "BITCOIND_RPC_URL": "http://127.0.0.1:9", "BITCOIND_TIMEOUT": "1",
            "BROKER_URL": f"sqla+sqlite:///{tmp / 'broker.db'}", "MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
            "RATELIMIT_RECOVERY_EMAIL": "100000/hour", "RATELIMIT_RECOVERY_IP": "100000/hour",
            "RATELIMIT_DEVICE": "100000/minute", "RATELIMIT_IP": "100000/minute", **env}
    settings = Settings.from_env(base)
    return create_app(settings), settings


def recovery_timing(pairs: int) -> None:
    from client.phone import PhoneWallet
    from tests.api.recovery_kit import account, device, setup_2of3
    from client.recovery import Recoverer
    with tempfile.TemporaryDirectory() as tmp:
        app, _settings = _app(Path(tmp))
        owner, contact = device(app), device(app)
        phone = PhoneWallet()
        aid = account(owner, phone)["account_id"]
        setup_2of3(owner, contact.device_id, aid, phone, "owner@example.org")
        new = device(app)
        known, unknown, slower = [], [], 0
        for i in range(pairs):
            t = time.perf_counter()
            Recoverer(new).start("owner@example.org")
            k = time.perf_counter() - t
            t = time.perf_counter()
            Recoverer(new).start(f"nobody{i}@example.org")
            u = time.perf_counter() - t
            known.append(k)
            unknown.append(u)
            slower += k > u
        print(f"recovery start: p50 known {statistics.median(known) * 1000:.1f} ms, "
              f"unknown {statistics.median(unknown) * 1000:.1f} ms; known slower in {slower} of {pairs} pairs")


def login_load() -> None:
    from admin import credentials as cred
    h = cred.hash_password("a long enough password")
    t = time.perf_counter()
    for _ in range(10):
        cred.check_password(h, "wrong password")
    print(f"argon2 (m={cred.ARGON2_MEMORY_KIB // 1024} MiB, t={cred.ARGON2_TIME_COST}, p={cred.ARGON2_PARALLELISM}):"
          f" {(time.perf_counter() - t) * 100:.1f} ms per verification")
    with tempfile.TemporaryDirectory() as tmp:
        app, _settings = _app(Path(tmp))
        stop = threading.Event()
        posted = []

        def hammer():
            c = app.test_client()
            env = {"REMOTE_ADDR": "10.66.0.1"}
            token = re.search(r'name="csrf_token" value="([^"]+)"',
                              c.get("/admin/login", environ_base=env).text).group(1)
            while not stop.is_set():
                r = c.post("/admin/login", data={"username": f"u{len(posted)}", "password": "wrong password!",
                                                 "csrf_token": token}, environ_base=env)
                posted.append(r.status_code)
        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for th in threads:
            th.start()
        c = app.test_client()
        latencies = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            t = time.perf_counter()
            c.get("/v1/health")
            latencies.append(time.perf_counter() - t)
            time.sleep(0.02)
        stop.set()
        for th in threads:
            th.join()
        print(f"/v1/health under 4 login threads for 5 s: median {statistics.median(latencies) * 1000:.1f} ms, "
              f"max {max(latencies) * 1000:.1f} ms; logins answered: {posted.count(401)} × 401 (hashed), "
              f"{posted.count(429)} × 429 (throttled before hashing)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=60)
    args = ap.parse_args(argv)
    recovery_timing(args.pairs)
    login_load()
    return 0


if __name__ == "__main__":
    sys.exit(main())
