"""Side-by-side runs of one bench against two source trees (an old revision and the
working tree), interleaved so both see the same machine load.

A bench that supports it takes `--root DIR` (the tree whose server code it runs) and
`--json` (print one JSON object as the last line). `compare(...)` checks the old revision
out into a temporary git worktree, runs `old, new, old, new, ...` `runs` times each and
returns the per-variant lists of results; `medians()` folds them. Nothing here asserts.
"""
from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def worktree(rev: str):
    """A detached checkout of `rev` of this repository in a temporary directory, with
    the shared virtualenv linked in; removed on exit."""
    path = Path(tempfile.mkdtemp(prefix="custos-bench-base-")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(path), rev], check=True)
    try:
        venv = ROOT / ".venv"
        if venv.exists() and not (path / ".venv").exists():
            (path / ".venv").symlink_to(venv.resolve())
        yield path
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)


def run_json(script: Path, root: Path, args: list[str], timeout: float = 1800) -> dict:
    """Run `script --root root --json args...`; return the JSON of its last output line."""
    proc = subprocess.run([sys.executable, str(script), "--root", str(root), "--json", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=str(root))
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{script.name} failed in {root}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1])


def compare(script: Path, base_rev: str, runs: int, args: list[str], new_rev: str | None = None) -> dict[str, list[dict]]:
    """{'old': [result, ...], 'new': [...]}, run alternately `runs` times each. `new_rev`
    None: the working tree is "new"; else that revision, checked out like the old one."""
    out: dict[str, list[dict]] = {"old": [], "new": []}
    with worktree(base_rev) as old_root, \
            (worktree(new_rev) if new_rev else contextlib.nullcontext(ROOT)) as new_root:
        for i in range(runs):
            for name, root in (("old", old_root), ("new", new_root)):
                print(f"  run {i + 1}/{runs} {name} ...", file=sys.stderr, flush=True)
                out[name].append(run_json(script, root, args))
    return out


def medians(results: list[dict]) -> dict:
    """Median of every numeric leaf across results of the same shape (nested dicts)."""
    if not results:
        return {}
    first = results[0]
    out = {}
    for key, value in first.items():
        if isinstance(value, dict):
            out[key] = medians([r[key] for r in results if isinstance(r.get(key), dict)])
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            vals = [r[key] for r in results if isinstance(r.get(key), (int, float))]
            out[key] = statistics.median(vals) if vals else None
        else:
            out[key] = value
    return out


def ratio(old, new) -> str:
    """'2.31x' (old/new for costs; the caller passes new/old for rates)."""
    try:
        return f"{old / new:.2f}x"
    except (TypeError, ZeroDivisionError):
        return "-"

