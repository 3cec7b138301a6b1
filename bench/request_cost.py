"""What one signed request costs the server, in process: CPU and wall milliseconds per
request for the device and messaging calls, and where the time goes (cProfile).

No HTTP and no client work is timed: every request is signed beforehand and handed to
the WSGI app as a ready environ (what gunicorn gives it), so the figures are the server's
own cost. Two configurations, each in a fresh app on a fresh database:

- `bench`: LOG_LEVEL=WARNING, rate limiting off (what bench/messaging.py runs);
- `production`: the production defaults — LOG_LEVEL=INFO with JSON lines (to /dev/null)
  and rate limiting on (limits set high enough that nothing is refused, every counter
  still counted).

SQLite in a temporary directory by default; BENCH_DATABASE_URL (a scratch PostgreSQL
database, migrated here) and BENCH_REDIS_URL (nonces and counters in Redis) for the
production stack. Prints figures; never asserts.

    .venv/bin/python bench/request_cost.py [--n 300] [--profile]
    .venv/bin/python bench/request_cost.py --compare <git rev> [--runs 3]   # old vs new, interleaved
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.append(str(HERE))   # last: bench/messaging.py must not shadow the messaging package
import kit  # noqa: E402  (this tree's helpers, whichever tree --root runs)


def _parse(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300, help="requests per scenario and configuration")
    ap.add_argument("--size", type=int, default=1024, help="ciphertext bytes per envelope")
    ap.add_argument("--batch", type=int, default=10, help="envelopes per batched send / guids per batched ack")
    ap.add_argument("--profile", action="store_true", help="print the cProfile breakdown")
    ap.add_argument("--configs", default="bench,production")
    ap.add_argument("--root", default=str(HERE.parent), help="source tree whose server code runs")
    ap.add_argument("--json", action="store_true", help="print one JSON line of results at the end")
    ap.add_argument("--compare", metavar="REV", help="run REV's tree and the working tree alternately")
    ap.add_argument("--runs", type=int, default=3, help="runs per variant with --compare")
    ap.add_argument("--against", metavar="REV", help="with --compare: the new side (default: the working tree)")
    return ap.parse_args(argv)


CONFIGS = {
    "bench": {"LOG_LEVEL": "WARNING", "RATELIMIT_ENABLED": "0"},
    "production": {"LOG_LEVEL": "INFO", "LOG_JSON": "1", "RATELIMIT_ENABLED": "1",
                   "RATELIMIT_IP": "100000000/minute", "RATELIMIT_DEVICE": "100000000/minute",
                   "MESSAGE_RATE_BURST": "100000000", "MESSAGE_RATE": "1000000"},
}
SCENARIOS = ("whoami", "send1", "fetch1", "ack1", "sendN", "fetchN", "ackN")
# cumulative time of these functions (when the tree has them) is printed with --profile
WATCH = ("use", "_device_resolver", "get_active", "check_device_rate", "hit", "redact", "filter",
         "commit", "_check_request_limit", "verify_signature", "send", "fetch", "ack", "ack_many",
         "notify", "_finish", "_observe", "take")


class Capture:
    """A CustosClient transport that records the signed request instead of sending it."""

    def __init__(self, app):
        self.app = app
        self.last = None
        self.forward = None

    def __call__(self, method, url, headers, body):
        from urllib.parse import urlsplit
        u = urlsplit(url)
        self.last = (method, u.path, u.query, dict(headers), body)
        if self.forward:
            return self.forward(method, url, headers, body)
        return 200, {}, b"{}"


def environ_for(method, path, query, headers, body):
    from werkzeug.test import EnvironBuilder
    b = EnvironBuilder(path=path, method=method, query_string=query or None, headers=headers,
                       data=body or None, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    env = b.get_environ()
    env["RAW_URI"] = path + (f"?{query}" if query else "")
    return env


def call(app, env):
    """Run one request through the WSGI app; return (status, body bytes)."""
    status = []

    def start_response(s, h, exc_info=None):
        status.append(int(s.split()[0]))
    result = app(env, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return status[0], body


def build_app(root: Path, cfg: dict, tmp: Path):
    from config.settings import Settings
    from app import create_app
    env = {"CUSTOS_ENV": "test", "DATABASE_URL": f"sqlite:///{tmp / 'custos.db'}",
           "BITCOIND_RPC_URL": "http://127.0.0.1:9", "BROKER_URL": f"sqla+sqlite:///{tmp / 'broker.db'}",
           "LOG_JSON": "1", **cfg}
    kit.scratch_backends(env, os.environ)   # BENCH_* scratch backends, emptied (any tree migrates them)
    from tests.dbutil import upgrade
    upgrade(env["DATABASE_URL"])
    return create_app(Settings.from_env(env))


def measure_config(root: Path, cfg_name: str, n: int, size: int, batch: int, profile: bool) -> dict:
    """{scenario: {"cpu_ms", "wall_ms"}} medians per request, plus the profile text."""
    import cProfile
    import io
    import pstats

    from tests.conftest import flask_transport
    from tests.messaging_kit import befriend, key_upload
    from client.messaging import MessagingClient
    from client.sdk import DeviceKey

    tmp = Path(tempfile.mkdtemp(prefix=f"custos-reqcost-{cfg_name}-"))
    real_stderr = sys.stderr
    sys.stderr = open(os.devnull, "w")  # the INFO log lines go nowhere (their cost stays)
    try:
        app = build_app(root, CONFIGS[cfg_name], tmp)
        forward = flask_transport(app)
        cap_a, cap_b = Capture(app), Capture(app)
        cap_a.forward = cap_b.forward = forward
        alice = MessagingClient("http://localhost", DeviceKey.generate(), transport=cap_a)
        bob = MessagingClient("http://localhost", DeviceKey.generate(), transport=cap_b)
        alice.register(), bob.register()
        alice.upload_keys(key_upload(1)[0])
        befriend(alice, bob)
        cap_a.forward = cap_b.forward = None  # from here: capture only, we call the app ourselves
        has_ack_many = any(r.rule == "/v1/messages/ack" for r in app.url_map.iter_rules())
        payload = base64.b64encode(os.urandom(size)).decode()

        def signed(client, cap, method, path, body=None):
            client.request(method, path, body)
            return environ_for(*cap.last)

        samples = {s: [] for s in SCENARIOS}
        prof = cProfile.Profile(time.process_time)  # CPU time: fsync waits are not CPU
        profiling = [False]

        def timed(name, env, expect):
            if profiling[0]:
                prof.enable()
            c0, w0 = time.process_time(), time.perf_counter()
            status, body = call(app, env)
            samples[name].append((time.process_time() - c0, time.perf_counter() - w0))
            if profiling[0]:
                prof.disable()
            if status != expect:
                raise RuntimeError(f"{name}: HTTP {status} {body[:300]!r}")
            return body

        def one_round():
            timed("whoami", signed(alice, cap_a, "GET", "/v1/devices/me"), 200)
            timed("send1", signed(bob, cap_b, "POST", "/v1/messages",
                                  {"messages": [{"to": alice.device_id, "ciphertext": payload}]}), 201)
            page = json.loads(timed("fetch1", signed(alice, cap_a, "GET", "/v1/messages?limit=100"), 200))
            for m in page["messages"]:
                timed("ack1", signed(alice, cap_a, "DELETE", f"/v1/messages/{m['guid']}"), 204)
            timed("sendN", signed(bob, cap_b, "POST", "/v1/messages",
                                  {"messages": [{"to": alice.device_id, "ciphertext": payload}] * batch}), 201)
            page = json.loads(timed("fetchN", signed(alice, cap_a, "GET", "/v1/messages?limit=100"), 200))
            guids = [m["guid"] for m in page["messages"]]
            if has_ack_many:
                timed("ackN", signed(alice, cap_a, "POST", "/v1/messages/ack", {"guids": guids}), 200)
            else:  # the old protocol: one DELETE per guid, counted as one "ackN" unit
                c = w = 0.0
                for g in guids:
                    timed("ackN", signed(alice, cap_a, "DELETE", f"/v1/messages/{g}"), 204)
                    cc, ww = samples["ackN"].pop()
                    c, w = c + cc, w + ww
                samples["ackN"].append((c, w))

        for _ in range(20):  # warm-up: caches, pools, first-request paths
            one_round()
        for s in SCENARIOS:
            samples[s].clear()
        for _ in range(n):
            one_round()
        result = {s: {"cpu_ms": 1000 * statistics.median(c for c, _ in v),
                      "wall_ms": 1000 * statistics.median(w for _, w in v)} for s, v in samples.items() if v}
        result["per_message_single"] = {
            "cpu_ms": result["send1"]["cpu_ms"] + result["fetch1"]["cpu_ms"] + result["ack1"]["cpu_ms"]}
        result["per_message_batch"] = {
            "cpu_ms": (result["sendN"]["cpu_ms"] + result["fetchN"]["cpu_ms"] + result["ackN"]["cpu_ms"]) / batch}
        text = ""
        if profile:  # only the app calls are profiled, not the client's signing
            profiling[0] = True
            for _ in range(max(50, n // 3)):
                one_round()
            buf = io.StringIO()
            text = profile_report(pstats.Stats(prof, stream=buf))
        return {"result": result, "profile": text, "ack_many": has_ack_many}
    finally:
        sys.stderr.close()
        sys.stderr = real_stderr


BUCKETS = (
    ("sqlalchemy", ("sqlalchemy",)),
    ("sqlite3/psycopg (driver)", ("sqlite3", "psycopg", "~:0(<method 'execute'", "_sqlite3")),
    ("redis client", ("redis/",)),
    ("flask/werkzeug/smorest/marshmallow", ("flask/", "werkzeug", "flask_smorest", "marshmallow", "webargs",
                                            "flask_sqlalchemy", "jinja2", "apispec")),
    ("rate limiting", ("flask_limiter", "limits/", "app/ratelimit.py", "messaging/limits.py")),
    ("logging + redaction", ("logging/", "config/logging.py", "json/")),
    ("signature crypto", ("cryptography", "http_sf", "app/auth/httpsig.py", "devices/keys.py")),
    ("nonces", ("devices/nonces.py",)),
    ("custos code", ("/app/", "/devices/", "/messaging/", "/store/", "/audit/", "/admin/", "/config/")),
)


def _bucket(filename: str, funcname: str) -> str:
    key = f"{filename}:{funcname}"
    for name, marks in BUCKETS:
        if any(m in key for m in marks):
            return name
    return "other (stdlib, builtins)"


def profile_report(stats) -> str:
    total = stats.total_tt or 1e-9
    buckets: dict[str, float] = {}
    for (filename, _line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
        b = _bucket(filename, func)
        buckets[b] = buckets.get(b, 0.0) + tt
    lines = ["    own time by package:"]
    for name, tt in sorted(buckets.items(), key=lambda kv: -kv[1]):
        lines.append(f"      {100 * tt / total:5.1f}%  {name}")
    lines.append("    top functions (own time):")
    top = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:12]
    for (filename, line, func), (_cc, nc, tt, _ct, _c) in top:
        short = "/".join(Path(filename).parts[-2:]) if filename != "~" else "builtin"
        lines.append(f"      {100 * tt / total:5.1f}%  {func} ({short}:{line}) x{nc}")
    lines.append("    watched functions (cumulative, share of all request time):")
    root_dirs = ("/app/", "/devices/", "/messaging/", "/config/", "/store/", "/flask_limiter/", "/sqlalchemy/orm/session")
    seen = []
    for (filename, line, func), (_cc, nc, _tt, ct, _c) in stats.stats.items():
        if func in WATCH and any(d in filename for d in root_dirs):
            seen.append((ct, func, filename, line, nc))
    for ct, func, filename, line, nc in sorted(seen, reverse=True)[:16]:
        short = "/".join(Path(filename).parts[-2:])
        lines.append(f"      {100 * ct / total:5.1f}%  {func} ({short}:{line}) x{nc}")
    return "\n".join(lines)


def print_result(label: str, cfg: str, r: dict, batch: int) -> None:
    print(f"  [{label}] {cfg}: server ms per request (median CPU / wall)")
    for s in SCENARIOS:
        if s in r:
            name = {"sendN": f"send x{batch}", "fetchN": f"fetch {batch}",
                    "ackN": f"ack {batch}"}.get(s, s)
            print(f"      {name:10s} {r[s]['cpu_ms']:6.2f} / {r[s]['wall_ms']:6.2f}")
    print(f"      per message: single {r['per_message_single']['cpu_ms']:.2f} ms CPU, "
          f"batches of {batch} {r['per_message_batch']['cpu_ms']:.2f} ms CPU")


def run_compare(args) -> int:
    sys.path.insert(0, str(HERE.parent))
    from bench.compare import compare, medians, ratio
    extra = ["--n", str(args.n), "--size", str(args.size), "--batch", str(args.batch), "--configs", args.configs]
    runs = compare(Path(__file__), args.compare, args.runs, extra, args.against)
    old, new = medians(runs["old"]), medians(runs["new"])
    print(f"request cost, old = {args.compare} vs new = {args.against or 'working tree'}; medians of {args.runs} interleaved runs, "
          f"{args.n} requests per scenario; server CPU ms per request (in process)")
    for cfg in args.configs.split(","):
        print(f"  {cfg}:")
        print(f"      {'':22s} {'old':>8s} {'new':>8s} {'speed-up':>9s}")
        for s in (*SCENARIOS, "per_message_single", "per_message_batch"):
            o, nw = old[cfg].get(s, {}).get("cpu_ms"), new[cfg].get(s, {}).get("cpu_ms")
            if o is None or nw is None:
                continue
            print(f"      {s:22s} {o:8.2f} {nw:8.2f} {ratio(o, nw):>9s}")
    print(json.dumps({"old": old, "new": new}))
    return 0


def main(argv=None) -> int:
    args = _parse(argv)
    if args.compare:
        return run_compare(args)
    root = Path(args.root).resolve()
    os.chdir(root)
    sys.path.insert(0, str(root))
    out = {}
    backend = "postgresql" if os.environ.get("BENCH_DATABASE_URL", "").startswith("postgresql") else "sqlite"
    if not args.json:
        print(f"request cost in process ({root.name}): {backend}, nonces/counters in "
              f"{'redis' if os.environ.get('BENCH_REDIS_URL') else 'database/memory'}, {args.n} requests each, "
              f"{args.size} B envelopes")
    for cfg in args.configs.split(","):
        m = measure_config(root, cfg, args.n, args.size, args.batch, args.profile)
        out[cfg] = m["result"]
        if not args.json:
            print_result(root.name, cfg, m["result"], args.batch)
            if not m["ack_many"]:
                print("      (this tree has no POST /v1/messages/ack: 'ack N' is N DELETE calls)")
        if m["profile"]:
            print(f"  profile ({cfg}):\n{m['profile']}", flush=True)
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
