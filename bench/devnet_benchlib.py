"""Shared helpers for the devnet benchmarks (programs that print figures, never assert)."""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devnet.harness import start_node  # noqa: E402


def node_in_tempdir():
    """(node, tempdir handle) — a fresh devnet (or bitcoind if BITCOIND is set)."""
    tmp = tempfile.TemporaryDirectory(prefix="devnet-bench-")
    return start_node(Path(tmp.name)), tmp


def timed(fn, *args):
    t = time.perf_counter()
    result = fn(*args)
    return (time.perf_counter() - t) * 1000.0, result


def report(name: str, samples_ms: list[float], budget_ms: float | None = None) -> None:
    samples = sorted(samples_ms)
    p50 = statistics.median(samples)
    p90 = samples[min(len(samples) - 1, int(len(samples) * 0.9))]
    note = f"  (target < {budget_ms:g} ms)" if budget_ms else ""
    print(f"{name:<48} n={len(samples):<5} p50={p50:8.2f} ms  p90={p90:8.2f} ms  "
          f"min={samples[0]:8.2f} ms{note}", flush=True)


def faucet(node, blocks: int = 101):
    rpc = node.rpc()
    rpc.createwallet("faucet")
    w = node.rpc("faucet")
    rpc.generatetoaddress(blocks, w.getnewaddress())
    return w
