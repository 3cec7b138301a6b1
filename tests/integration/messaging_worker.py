"""A fake OneSignal REST endpoint (http.server on 127.0.0.1, free port) and a real Celery
worker subprocess configured for messaging tests."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class FakeOneSignal:
    """Records each request; answers with the next scripted status (then 200)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.script: list[int] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with fake.lock:
                    fake.requests.append({"path": self.path, "headers": dict(self.headers.items()),
                                          "json": json.loads(body or b"null")})
                    status = fake.script.pop(0) if fake.script else 200
                payload = {"id": "b98881cc-1e94-4366-bbd9-db8f3429292b"} if status == 200 else \
                    {"errors": ["rate limit exceeded"] if status == 429 else ["server error"]}
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def broker_for(redis_url: str | None, tmp_path: Path) -> str:
    if not redis_url:
        return f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    from tests.services import worker_broker_url
    return worker_broker_url(redis_url)


def start_worker(database_url: str, broker: str, log_path: Path, **env) -> subprocess.Popen:
    full = {**os.environ, "CUSTOS_ENV": "test", "DATABASE_URL": database_url, "BROKER_URL": broker,
            "LOG_JSON": "0", "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1", **{k: str(v) for k, v in env.items()}}
    full.pop("REDIS_URL", None)
    log = open(log_path, "w")
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker",
                             "--concurrency", "2", "--without-gossip", "--without-mingle",
                             "-n", f"msg-{os.getpid()}@%h"],
                            cwd=ROOT, env=full, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
