"""Load-independent cost of one request: instructions executed by the API code (valgrind
callgrind), per request, for the signed-request scenarios of bench/request_cost.py and
a cosign submit. Wall and CPU clocks move with the machine's load; instruction counts do
not, so this compares an old tree and the working tree on a busy machine.

The scenario runs in process under `valgrind --tool=callgrind --instr-atstart=no`: setup
(imports, migrations, devices, spends) runs uninstrumented; the controller switches
instrumentation on (`callgrind_control -i on`), zeroes the counters, lets N requests run,
dumps, and reads the total Ir. Only this process is counted (devnet, a separate process,
is not). Needs valgrind. Prints figures; never asserts.

    .venv/bin/python bench/callgrind.py [--n 30] [--scenarios whoami,send1,fetch1,ack1,sendN,ackN,cosign]
    .venv/bin/python bench/callgrind.py --compare <git rev>
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIOS = ("health", "whoami", "send1", "fetch1", "ack1", "sendN", "ackN", "cosign")


def _parse(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30, help="requests counted per scenario")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--root", default=str(HERE.parent))
    ap.add_argument("--compare", metavar="REV")
    ap.add_argument("--against", metavar="REV")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--worker", metavar="SCENARIO", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


# -- inside valgrind -------------------------------------------------------------------
def _messaging_setup(root: Path, batch: int):
    """(run(scenario) -> callable doing one request) over an in-process app."""
    sys.path.append(str(HERE))
    import request_cost as rc
    from client.messaging import MessagingClient
    from client.sdk import DeviceKey
    from tests.conftest import flask_transport
    from tests.messaging_kit import befriend, key_upload
    tmp = Path(tempfile.mkdtemp(prefix="custos-cg-"))
    app = rc.build_app(root, rc.CONFIGS["bench"], tmp)
    forward = flask_transport(app)
    cap_a, cap_b = rc.Capture(app), rc.Capture(app)
    cap_a.forward = cap_b.forward = forward
    alice = MessagingClient("http://localhost", DeviceKey.generate(), transport=cap_a)
    bob = MessagingClient("http://localhost", DeviceKey.generate(), transport=cap_b)
    alice.register(), bob.register()
    alice.upload_keys(key_upload(1)[0])
    befriend(alice, bob)
    cap_a.forward = cap_b.forward = None
    has_ack_many = any(r.rule == "/v1/messages/ack" for r in app.url_map.iter_rules())
    payload = base64.b64encode(os.urandom(1024)).decode()

    def signed(client, cap, method, path, body=None):
        client.request(method, path, body)
        return rc.environ_for(*cap.last)

    def queue(n):
        env = signed(bob, cap_b, "POST", "/v1/messages", {"messages": [{"to": alice.device_id, "ciphertext": payload}] * n})
        return [m["guid"] for m in json.loads(rc.call(app, env)[1])["messages"]]

    def prepare(scenario: str, count: int) -> list:
        """Signed environs for `count` requests of `scenario` (state arranged first)."""
        if scenario == "health":     # the floor: an unsigned request through the same app
            return [rc.environ_for("GET", "/v1/health", "", {}, b"") for _ in range(count)]
        if scenario == "whoami":
            return [signed(alice, cap_a, "GET", "/v1/devices/me") for _ in range(count)]
        if scenario == "send1":
            return [signed(bob, cap_b, "POST", "/v1/messages", {"messages": [{"to": alice.device_id,
                                                                              "ciphertext": payload}]})
                    for _ in range(count)]
        if scenario == "sendN":
            return [signed(bob, cap_b, "POST", "/v1/messages", {"messages": [{"to": alice.device_id,
                                                                              "ciphertext": payload}] * batch})
                    for _ in range(count)]
        if scenario == "fetch1":
            queue(1)
            return [signed(alice, cap_a, "GET", "/v1/messages?limit=100") for _ in range(count)]
        if scenario == "ack1":
            return [signed(alice, cap_a, "DELETE", f"/v1/messages/{g}") for g in queue(count)]
        if scenario == "ackN":
            envs = []
            for _ in range(count):
                guids = queue(batch)
                if has_ack_many:
                    envs.append([signed(alice, cap_a, "POST", "/v1/messages/ack", {"guids": guids})])
                else:   # the old protocol: one DELETE per guid make up one "ack N"
                    envs.append([signed(alice, cap_a, "DELETE", f"/v1/messages/{g}") for g in guids])
            return envs
        raise ValueError(scenario)

    def run_one(item):
        for env in (item if isinstance(item, list) else [item]):
            status, body = rc.call(app, env)
            if status >= 400:
                raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
    return prepare, run_one


def worker(args) -> int:
    root = Path(args.root).resolve()
    os.chdir(root)
    sys.path.insert(0, str(root))
    sys.stderr = open(os.environ.get("CUSTOS_BENCH_LOG") or os.devnull, "a")
    if args.worker == "cosign":
        sys.path.append(str(HERE))
        import cosign as cb
        bench = cb.InProcess(root, args.n + 3)
        items, run_one = list(range(3, args.n + 3)), bench.submit
        for i in range(3):
            bench.submit(i)            # warm: first-use imports and caches stay out of the count
    else:
        prepare, run_one = _messaging_setup(root, args.batch)
        for item in prepare(args.worker, 5):
            run_one(item)              # warm
        items = prepare(args.worker, args.n)
    print("ready", flush=True)
    sys.stdin.readline()               # the controller switches instrumentation on
    for item in items:
        run_one(item)
    print("done", flush=True)
    sys.stdin.readline()               # ... dumps the counts
    if args.worker == "cosign":
        bench.close()
    return 0


# -- the controller ----------------------------------------------------------------------
def measure(root: Path, scenario: str, n: int, batch: int) -> float:
    """Instructions per request for `scenario` in the tree at `root`."""
    out_dir = Path(tempfile.mkdtemp(prefix="custos-cg-out-"))
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_dir}/cg.%p",
           sys.executable, str(Path(__file__).resolve()), "--worker", scenario, "--root", str(root),
           "--n", str(n), "--batch", str(batch)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=str(root), env={**os.environ, "CUSTOS_BENCH_PYTHON": sys.executable,
                                                "CUSTOS_BENCH_LOG": str(out_dir / "worker.log")})
    try:
        line = proc.stdout.readline()
        while line and line.strip() != "ready":     # devnet's start-up line comes first
            line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{scenario}: worker failed, see {out_dir / 'worker.log'}")
        ctl = ["callgrind_control"]
        subprocess.run(ctl + ["-i", "on", str(proc.pid)], check=True, capture_output=True)
        subprocess.run(ctl + ["-z", str(proc.pid)], check=True, capture_output=True)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        if proc.stdout.readline().strip() != "done":
            raise RuntimeError(f"{scenario}: worker failed: {proc.stderr.read()[-3000:]}")
        subprocess.run(ctl + ["-d", str(proc.pid)], check=True, capture_output=True)
        subprocess.run(ctl + ["-i", "off", str(proc.pid)], check=True, capture_output=True)
        proc.stdin.write("exit\n")
        proc.stdin.flush()
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    dumps = sorted(glob.glob(f"{out_dir}/cg.*.*"), key=os.path.getmtime)
    if not dumps:
        raise RuntimeError(f"{scenario}: no callgrind dump in {out_dir}")
    text = Path(dumps[0]).read_text(errors="replace")
    m = re.search(r"^(?:totals|summary):\s*(\d+)", text, re.M)
    if not m:
        raise RuntimeError(f"{scenario}: no totals in {dumps[0]}")
    return int(m.group(1)) / n


def run(root: Path, scenarios: list[str], n: int, batch: int) -> dict:
    out = {}
    for s in scenarios:
        print(f"  {root.name}: {s} ...", file=sys.stderr, flush=True)
        out[s] = measure(root, s, n if s != "cosign" else max(5, n // 3), batch)
    return out


def main(argv=None) -> int:
    args = _parse(argv)
    if args.worker:
        return worker(args)
    scenarios = [s for s in args.scenarios.split(",") if s]
    if args.compare:
        sys.path.insert(0, str(HERE.parent))
        from bench.compare import ROOT, worktree
        with worktree(args.compare) as old_root, \
                (worktree(args.against) if args.against else contextlib.nullcontext(ROOT)) as new_root:
            old = run(old_root, scenarios, args.n, args.batch)
            new = run(new_root, scenarios, args.n, args.batch)
        print(f"instructions per request (callgrind Ir, millions), old = {args.compare} vs new = "
              f"{args.against or 'working tree'}; bench config (SQLite, WARNING, rate limits off)")
        print(f"  {'scenario':10s} {'old':>8s} {'new':>8s} {'old/new':>8s}")
        for s in scenarios:
            label = {"sendN": f"send x{args.batch}", "ackN": f"ack {args.batch}"}.get(s, s)
            print(f"  {label:10s} {old[s] / 1e6:8.2f} {new[s] / 1e6:8.2f} {old[s] / new[s]:7.2f}x")
        print(json.dumps({"old": old, "new": new}))
        return 0
    result = run(Path(args.root).resolve(), scenarios, args.n, args.batch)
    for s, ir in result.items():
        print(f"  {s:10s} {ir / 1e6:8.2f} M instructions per request")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
