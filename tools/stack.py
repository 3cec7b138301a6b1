"""Start the whole stack on embedded defaults: migrations, devnet, Celery worker + beat,
and the API under gunicorn. `python -m tools.stack` is what `make run` runs.

Ctrl-C (SIGINT) or SIGTERM stops every process it started, in reverse order. The
embedded defaults: SQLite under var/, Celery's SQLAlchemy transport on var/broker.db,
devnet on a free port with a per-run RPC password (unless BITCOIND_RPC_URL is set).
Environment variables that are already set win over these defaults.
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, procs: list) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def wait_devnet_ready(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait for devnet's "devnet ready" line on stdout (echoing what it printed until then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                return False
            continue
        sys.stdout.write(line)
        if "devnet ready" in line:
            return True
    return False


class Stack:
    """The processes of one local stack. Use as a context manager: stops them on exit."""

    def __init__(self, env: dict, api_host: str, api_port: int, workers: int | None = None, quiet: bool = False,
                 var: Path | None = None):
        self.env = env
        self.var = var or ROOT / "var"
        self.api_host, self.api_port = api_host, api_port
        self.workers = workers
        self.quiet = quiet
        self.procs: list[tuple[str, subprocess.Popen]] = []

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    def _spawn(self, name: str, args: list[str], **kw) -> subprocess.Popen:
        out = subprocess.DEVNULL if self.quiet else None
        proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=kw.pop("stdout", out),
                                stderr=kw.pop("stderr", out), start_new_session=True, **kw)
        self.procs.append((name, proc))
        return proc

    def start(self) -> None:
        var = self.var
        var.mkdir(parents=True, exist_ok=True)
        subprocess.run([PY, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=self.env,
                       check=True, stdout=subprocess.DEVNULL if self.quiet else None)
        if not self.env.get("BITCOIND_RPC_URL") and (ROOT / "devnet" / "__main__.py").exists():
            self._start_devnet()
        self._spawn("worker", [PY, "-m", "celery", "-A", "workers.celery_app", "worker",
                               "--loglevel", "INFO", "--concurrency", "2", "--without-gossip",
                               "--without-mingle", "-n", f"worker-{os.getpid()}@%h"])
        self._spawn("beat", [PY, "-m", "celery", "-A", "workers.celery_app", "beat", "--loglevel", "INFO",
                             "--schedule", str(var / f"beat-schedule-{self.api_port}")])
        workers = ["--workers", str(self.workers)] if self.workers else []  # else gunicorn.conf.py: 2 per core
        self._spawn("api", [PY, "-m", "gunicorn", "wsgi:app", "--bind", f"{self.api_host}:{self.api_port}",
                            *workers, "--timeout", "60", "--access-logfile", "-"])
        procs = [p for _, p in self.procs]
        if not wait_http(self.api_url + "/v1/health", 60, procs):
            dead = [n for n, p in self.procs if p.poll() is not None]
            raise RuntimeError(f"the API did not come up (exited: {', '.join(dead) or 'none'})")

    def _start_devnet(self, attempts: int = 3) -> None:
        """Start devnet on free ports. A port found free can be taken by another process
        before devnet binds it (suites of several engineers run side by side): when devnet
        exits before it is ready, try again on new ports."""
        for _ in range(attempts):
            port, password = free_port(), secrets.token_urlsafe(18)
            zmq_url = f"tcp://127.0.0.1:{free_port()}"
            proc = self._spawn("devnet", [PY, "-m", "devnet", "--datadir", self.env["DEVNET_DATADIR"],
                                          "--rpcport", str(port), "--rpcuser", "custos",
                                          "--rpcpassword", password, "--fallbackfee", "0.0002",
                                          "--zmqpub", zmq_url],
                               stdout=subprocess.PIPE, text=True)
            if wait_devnet_ready(proc, 120):
                self.env.update(BITCOIND_RPC_URL=f"http://127.0.0.1:{port}", BITCOIND_RPC_USER="custos",
                                BITCOIND_RPC_PASSWORD=password, BITCOIND_ZMQ_URL=zmq_url)
                self.devnet_url = f"http://127.0.0.1:{port}"
                return
            if proc.poll() is None:      # alive but not ready in time: no retry would help
                break
            self.procs.remove(("devnet", proc))
        raise RuntimeError("devnet did not start")

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()


def embedded_env(base: dict | None = None, var: Path | None = None) -> dict:
    """The environment for an embedded stack; values already in `base` win."""
    var = var or ROOT / "var"
    env = dict(os.environ if base is None else base)
    env.setdefault("DATABASE_URL", f"sqlite:///{var / 'custos.db'}")
    env.setdefault("BROKER_URL", f"sqla+sqlite:///{var / 'broker.db'}")
    env.setdefault("DEVNET_DATADIR", str(var / "devnet"))
    env.setdefault("LOG_JSON", "0")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run the Custos stack locally (make run)")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    args = parser.parse_args(argv)
    stack = Stack(embedded_env(), args.host, args.port)
    stopping = False

    def _stop(_sig, _frame):
        nonlocal stopping
        stopping = True
    signal.signal(signal.SIGTERM, _stop)
    try:
        with stack:
            print(f"\nCustos is up.\n  API:        {stack.api_url}/v1\n  Swagger UI: {stack.api_url}/v1/docs\n"
                  f"  OpenAPI:    {stack.api_url}/v1/openapi.json\n"
                  + (f"  devnet RPC: {stack.devnet_url} (user custos)\n" if hasattr(stack, "devnet_url") else "")
                  + "Press Ctrl-C to stop.\n", flush=True)
            while not stopping:
                dead = [n for n, p in stack.procs if p.poll() is not None]
                if dead:
                    print(f"stopping: {', '.join(dead)} exited", file=sys.stderr)
                    return 1
                time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    print("stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
