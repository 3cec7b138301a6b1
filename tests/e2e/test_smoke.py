"""Boot what `make run` boots (tools.stack: migrations, devnet, worker, beat, gunicorn) on
free ports with embedded defaults, and use it over real HTTP."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[2]


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_health_and_ready(stack):
    assert get(stack.api_url + "/v1/health") == (200, {"status": "ok"})
    status, body = get(stack.api_url + "/v1/ready")
    assert status == 200, body
    assert all(c["ok"] for c in body["checks"].values())
    assert body["checks"]["bitcoind"]["detail"].startswith("regtest")


def test_docs_are_served(stack):
    with urllib.request.urlopen(stack.api_url + "/v1/docs", timeout=10) as r:
        assert r.status == 200 and b"swagger" in r.read().lower()


def test_cli_register_and_whoami(stack, tmp_path):
    state = tmp_path / "client.json"
    base = [sys.executable, "-m", "client", "--server", stack.api_url, "--state", str(state)]
    reg = subprocess.run(base + ["register", "--key-type", "ecdsa-p256"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert reg.returncode == 0, reg.stderr
    device_id = json.loads(reg.stdout)["device_id"]
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    who = subprocess.run(base + ["whoami"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["device_id"] == device_id


def test_beat_and_worker_run_the_schedule(stack):
    """Beat sends `reconcile` on start-up; the worker runs it and records beat's heartbeat."""
    import time
    from sqlalchemy import create_engine, text
    engine = create_engine(stack.env["DATABASE_URL"])
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if conn.execute(text("SELECT count(*) FROM worker_heartbeats WHERE name = 'beat'")).scalar():
                    return
            time.sleep(0.2)
    finally:
        engine.dispose()
    pytest.fail("beat/worker never recorded a heartbeat")
