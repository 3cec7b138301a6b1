"""Run several variants of one bench interleaved (round 1: every variant, round 2: every
variant, ...) and print the median of each figure per variant, so every variant sees the
same machine load. A variant is `name=rev:args` where rev is a git revision (checked
out in a temporary worktree) or `new` (the working tree), and args go to the bench; an
`env:K=V,...` suffix after `|` sets environment variables for that variant only.

    .venv/bin/python bench/matrix.py bench/messaging.py --runs 3 \\
        "old 1=44b1758:--batch 1" "new 1=new:--batch 1" \\
        "new pg 10=new:--batch 10|env:BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/x"
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.compare import ROOT, medians, worktree  # noqa: E402


def parse_variant(text: str) -> tuple[str, str, list[str], dict]:
    name, _, rest = text.partition("=")
    spec, _, env_part = rest.partition("|")
    rev, _, args = spec.partition(":")
    env = {}
    if env_part.startswith("env:"):
        for item in env_part[4:].split(","):
            k, _, v = item.partition("=")
            env[k] = v
    return name.strip(), rev.strip(), shlex.split(args), env


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("bench")
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    variants = [parse_variant(v) for v in args.variants]
    script = Path(args.bench).resolve()
    results: dict[str, list] = {}
    with contextlib.ExitStack() as stack:
        roots = {}
        for _name, rev, _a, _e in variants:
            if rev not in roots:
                roots[rev] = ROOT if rev == "new" else stack.enter_context(worktree(rev))
        for i in range(args.runs):
            for name, rev, vargs, venv in variants:
                print(f"  run {i + 1}/{args.runs} {name} ...", file=sys.stderr, flush=True)
                proc = subprocess.run([sys.executable, str(script), "--root", str(roots[rev]), "--json", *vargs],
                                      capture_output=True, text=True, timeout=3600, cwd=str(roots[rev]),
                                      env={**os.environ, **venv})
                lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
                if proc.returncode != 0 or not lines:
                    print(f"  {name} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                    continue
                results.setdefault(name, []).append(json.loads(lines[-1]))
    summary = {k: medians(v) for k, v in results.items()}
    keys = [k for k in next(iter(summary.values()), {}) if isinstance(next(iter(summary.values()))[k], float)]
    print(f"{script.name}: medians of {args.runs} interleaved runs")
    print("  " + f"{'variant':18s}" + "".join(f"{k[:18]:>19s}" for k in keys))
    for name, r in summary.items():
        print("  " + f"{name:18s}" + "".join(f"{r.get(k, float('nan')):19.2f}" for k in keys))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
