"""Price benchmark: what prices cost the parts that matter. Prints figures; never asserts.

- a refresh (ask 3 providers for 2 currencies over HTTP, validate, store) against local
  Spotbit/CoinGecko/Coinbase-format servers, on SQLite (or BENCH_DATABASE_URL);
- the price lookup a signing decision adds (`policy_service.rates`, one indexed read);
- `evaluate()` with fiat rules against the same policy in satoshis.

    .venv/bin/python bench/prices.py [--runs 50]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.bootstrap import price_config, price_providers  # noqa: E402
from config.settings import Settings  # noqa: E402
from cosigner import policy as engine  # noqa: E402
from cosigner import policy_service  # noqa: E402
from prices import services  # noqa: E402
from store.session import session_scope  # noqa: E402
from tests.dbutil import upgrade  # noqa: E402
from tests.price_servers import CoinbaseServer, CoinGeckoServer, SpotbitServer  # noqa: E402


def timed(fn, runs):
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return samples


def show(name, samples, unit=1000, label="ms"):
    s = sorted(samples)
    print(f"  {name:50s} p50 {statistics.median(s) * unit:8.3f} {label}   p99 "
          f"{s[min(len(s) - 1, int(0.99 * (len(s) - 1)))] * unit:8.3f} {label}   (n={len(s)})")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{tempfile.mkdtemp(prefix='prices-bench-')}/b.db"
    upgrade(url)
    servers = [SpotbitServer({"USD": "60000", "EUR": "55000"}), CoinGeckoServer({"USD": "60100", "EUR": "55050"}),
               CoinbaseServer({"USD": "60050", "EUR": "55020"})]
    try:
        settings = Settings.from_env({"DATABASE_URL": url, "PRICE_CURRENCIES": "USD,EUR", "PRICE_RETRIES": "0",
                                      "PRICE_PROVIDERS": ",".join(f"{s.kind}={s.url}" for s in servers)})
        providers, config = price_providers(settings), price_config(settings)
        print(f"prices bench: {len(providers)} providers x {len(config.currencies)} currencies, "
              f"{'postgresql' if url.startswith('postgresql') else 'sqlite'}")

        def refresh():
            now = dt.datetime.now(dt.timezone.utc)
            quotes = services.collect(providers, config.currencies, now)
            with session_scope(url) as s:
                services.record(s, quotes, config, now)
        show("refresh (HTTP to 3 local providers + store)", timed(refresh, args.runs))

        fiat = engine.Policy(max_per_tx_fiat=engine.FiatAmount(Decimal("500"), "USD"),
                             limits=(engine.Limit("24h", fiat=engine.FiatAmount(Decimal("1000"), "USD")),))
        sats = engine.Policy(max_per_tx_sat=800_000, limits=(engine.Limit("24h", 1_600_000),))
        now = dt.datetime.now(dt.timezone.utc)
        with session_scope(url) as s:
            show("price lookup per decision (policy_service.rates)",
                 timed(lambda: policy_service.rates(s, fiat, now), args.runs * 20), 1e6, "us")
            rates = policy_service.rates(s, fiat, now)
        intent = engine.Intent((("bcrt1qdest", 300_000),), 300, 2.0, frozenset({"t:0"}))
        history = [engine.HistoryEntry(now - dt.timedelta(hours=i), 10_000, frozenset({f"h{i}:0"})) for i in range(50)]
        show("evaluate(), satoshi rules, 50 spends in window",
             timed(lambda: engine.evaluate(intent, sats, history, now), args.runs * 40), 1e6, "us")
        show("evaluate(), fiat rules, 50 spends in window",
             timed(lambda: engine.evaluate(intent, fiat, history, now, rates=rates), args.runs * 40), 1e6, "us")
    finally:
        for s in servers:
            s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
