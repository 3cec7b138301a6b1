"""The cheap request path (issue #19) keeps every check: single-use nonces across API
processes and under concurrency, one rate-limiter lookup that still limits addresses
and devices, one query for the device and no reloads after commit."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import event

from client.sdk import CustosClient, DeviceKey
from devices.nonces import SqlNonceStore
from store.base import utcnow
from store.session import engine_for
from tests.conftest import flask_transport

ROOT = Path(__file__).resolve().parents[2]


# -- nonces ---------------------------------------------------------------------------
def test_sql_nonce_store_is_single_use_per_device_until_the_window_passes(clean_db):
    store = SqlNonceStore(engine_for(clean_db))
    now = utcnow()
    nonce = "n" * 24
    assert store.use("dev_a", nonce, 600, now) is True
    assert store.use("dev_a", nonce, 600, now + dt.timedelta(seconds=599)) is False
    assert store.use("dev_b", nonce, 600, now) is True           # the key includes the device
    assert store.use("dev_a", nonce, 600, now + dt.timedelta(seconds=601)) is True   # window passed
    assert store.use("dev_a", nonce, 600, now + dt.timedelta(seconds=602)) is False  # ...and is taken again


def test_sql_nonce_store_stores_what_the_compiled_statement_stores(clean_db):
    """The store runs `_USE` as driver SQL with its own parameter conversion: the row it
    writes is byte for byte the one SQLAlchemy's execution of `_USE` writes."""
    from sqlalchemy import text as sql_text

    from devices.nonces import _USE, UsedNonce, nonce_key
    engine = engine_for(clean_db)
    now = dt.datetime(2026, 5, 1, 12, 30, 45, 123456, tzinfo=dt.timezone.utc)
    assert SqlNonceStore(engine).use("dev_fast", "f" * 24, 600, now) is True
    with engine.begin() as conn:
        conn.execute(_USE, {"key": nonce_key("dev_orm", "f" * 24), "expires_at": now + dt.timedelta(seconds=600),
                            "now": now})
    with engine.connect() as conn:
        raw = dict(conn.execute(sql_text("SELECT key, expires_at FROM used_nonces")).all())
        typed = {r.key: r.expires_at for r in conn.execute(sql_text("SELECT * FROM used_nonces")
                                                             .columns(*UsedNonce.__table__.c)).all()}
    fast, orm = nonce_key("dev_fast", "f" * 24), nonce_key("dev_orm", "f" * 24)
    assert raw[fast] == raw[orm]
    assert typed[fast] == typed[orm] == now + dt.timedelta(seconds=600)


def test_sql_nonce_store_lets_exactly_one_of_concurrent_uses_through(clean_db):
    store = SqlNonceStore(engine_for(clean_db))
    now, results, start = utcnow(), [], threading.Barrier(8)

    def use():
        start.wait()
        results.append(store.use("dev_race", "r" * 32, 600, now))
    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


def _sqlite_nonce_engine(tmp_path: Path):
    from devices.nonces import UsedNonce
    engine = engine_for(f"sqlite:///{tmp_path / 'nonces.db'}")
    UsedNonce.__table__.create(engine)
    return engine


def _synchronous(dbapi_connection) -> int:
    return dbapi_connection.execute("PRAGMA synchronous").fetchone()[0]


def test_sqlite_nonce_commit_skips_the_fsync_and_the_pool_gets_full_sync_back(tmp_path):
    """On SQLite the nonce's own transaction runs at synchronous=NORMAL (1: no fsync at its
    commit); every connection the pool hands out afterwards is at FULL (2) again."""
    engine = _sqlite_nonce_engine(tmp_path)
    seen = []

    def at_statement(conn, _cursor, statement, _params, _context, _many):
        if "used_nonces" in statement:
            seen.append(_synchronous(conn.connection.dbapi_connection))
    event.listen(engine, "before_cursor_execute", at_statement)
    try:
        assert SqlNonceStore(engine).use("dev_sync", "s" * 24, 600, utcnow()) is True
        with engine.connect() as conn:            # the pool's connection the nonce used
            assert _synchronous(conn.connection.dbapi_connection) == 2
            conn.exec_driver_sql("SELECT count(*) FROM used_nonces")
        assert seen == [1, 2]                     # the nonce's INSERT at NORMAL, a request's statement at FULL
    finally:
        event.remove(engine, "before_cursor_execute", at_statement)


def test_sqlite_nonce_store_restores_full_sync_when_its_statement_fails(tmp_path):
    from sqlalchemy.exc import OperationalError
    engine = _sqlite_nonce_engine(tmp_path)
    store = SqlNonceStore(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE used_nonces")
    with pytest.raises(OperationalError):
        store.use("dev_sync", "t" * 24, 600, utcnow())
    with engine.connect() as conn:
        assert _synchronous(conn.connection.dbapi_connection) == 2


def test_on_sqlite_acks_commit_unsynced_and_everything_else_at_full_sync(tmp_path, app_factory):
    """The deletion of an acknowledged message (DELETE and the batched POST) runs at
    synchronous=NORMAL; the message's INSERT and the device's registration at FULL; after
    every request the connections are at FULL again."""
    from app.extensions import db
    from client.messaging import MessagingClient
    from tests.conftest import make_settings
    from tests.dbutil import upgrade
    from tests.messaging_kit import befriend, key_upload
    url = f"sqlite:///{tmp_path / 'acks.db'}"
    upgrade(url)
    app = app_factory(make_settings(url, None, f"sqla+sqlite:///{tmp_path / 'broker.db'}"))
    with app.app_context():
        engine = db.engine
    seen: list[tuple[str, int]] = []

    def at_statement(conn, _cursor, statement, _params, _context, _many):
        verb = statement.split()[0].upper()
        if verb in ("INSERT", "DELETE") and "used_nonces" not in statement:
            seen.append((f"{verb} {statement.split()[2]}", _synchronous(conn.connection.dbapi_connection)))
    event.listen(engine, "before_cursor_execute", at_statement)
    try:
        alice = MessagingClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app))
        bob = MessagingClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app))
        alice.register(), bob.register()
        alice.upload_keys(key_upload(1)[0])
        befriend(alice, bob)
        envelope = {"to": alice.device_id, "ciphertext": "aGk="}
        seen.clear()
        bob.send_envelopes([envelope])
        first = alice.fetch_messages(100)["messages"]
        alice.ack(first[0]["guid"])
        bob.send_envelopes([envelope, envelope])
        assert alice.ack_many([m["guid"] for m in alice.fetch_messages(100)["messages"]]) == 2
        assert alice.fetch_messages(100)["messages"] == []
        messages = [entry for entry in seen if "messaging_messages" in entry[0]]
        assert messages == [("INSERT messaging_messages", 2), ("DELETE messaging_messages", 1),
                            ("INSERT messaging_messages", 2), ("DELETE messaging_messages", 1)]
        assert {sync for what, sync in seen if what.startswith("INSERT")} == {2}
        pooled = [engine.connect() for _ in range(3)]
        try:
            assert [_synchronous(c.connection.dbapi_connection) for c in pooled] == [2, 2, 2]
        finally:
            for c in pooled:
                c.close()
    finally:
        event.remove(engine, "before_cursor_execute", at_statement)


def _process_env(database_url: str, redis_url: str | None, tmp_path: Path) -> dict:
    env = {**os.environ, "CUSTOS_ENV": "test", "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING",
           "LOG_JSON": "0", "BITCOIND_RPC_URL": "http://127.0.0.1:9",
           "BROKER_URL": redis_url or f"sqla+sqlite:///{tmp_path / 'broker.db'}"}
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def _run_in_process(env: dict, request_file: Path) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-m", "tests.integration.replay_process", str(request_file)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    status, code = out.stdout.strip().splitlines()[-1].split()
    return int(status), code


@pytest.mark.parametrize("store", ["redis", "database"])
def test_a_nonce_reused_across_two_api_processes_is_refused(store, clean_db, clean_redis, tmp_path, app_factory):
    if store == "redis" and not clean_redis:
        pytest.skip("needs Redis (runs under CI=true, where it is required)")
    env = _process_env(clean_db, clean_redis if store == "redis" else None, tmp_path)
    from config.settings import Settings
    app = app_factory(Settings.from_env({k: env[k] for k in env if k.isupper()}))
    assert type(app.extensions["custos"].nonces).__name__ == ("RedisNonceStore" if store == "redis"
                                                               else "SqlNonceStore")
    client = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app))
    client.register()
    body = json.dumps({"push_token": "tok"}).encode()
    headers = client.sign("PUT", "http://localhost/v1/devices/me/push-token",
                          {"Content-Type": "application/json"}, body, keyid=client.device_id)
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps({"method": "PUT", "path": "/v1/devices/me/push-token",
                                        "headers": headers, "body": body.decode()}))
    assert _run_in_process(env, request_file) == (200, "-")            # API process 1
    assert _run_in_process(env, request_file) == (401, "nonce_reused")  # API process 2: the replay


# -- rate limits: one lookup, same limits ---------------------------------------------
class CountingCounters:
    """Wraps the app's real counters (memory or Redis) and records each lookup."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def incr(self, items):
        self.calls.append([k for k, _ in items])
        return self.real.incr(items)


def _counting(app) -> CountingCounters:
    limiter = app.extensions["custos"].limiter
    limiter.counters = CountingCounters(limiter.counters)
    return limiter.counters


def test_a_signed_request_makes_one_limiter_lookup_for_address_and_device(app_factory, settings_factory):
    app = app_factory(settings_factory())
    client = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app))
    client.register()
    counters = _counting(app)
    assert client.request("GET", "/v1/devices/me")[0] == 200
    assert len(counters.calls) == 1
    (keys,) = counters.calls
    assert any(":ip:" in k and k.endswith("10.9.8.7") for k in keys)
    assert any(":device:" in k and k.endswith(client.device_id) for k in keys)


def test_a_forged_request_is_counted_against_its_address_once(app_factory, settings_factory):
    app = app_factory(settings_factory())
    counters = _counting(app)
    forged = CustosClient("http://localhost", DeviceKey.generate(), "dev_" + "0" * 32, flask_transport(app))
    status, _, data = forged.request("GET", "/v1/devices/me")
    assert (status, data["error"]["code"]) == (401, "unknown_device")
    assert len(counters.calls) == 1 and len(counters.calls[0]) == 1 and ":ip:" in counters.calls[0][0]


def test_the_address_limit_still_applies_to_validly_signed_requests(app_factory, settings_factory):
    app = app_factory(settings_factory(RATELIMIT_IP="4/minute"))
    a = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app))
    b = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app))
    a.register(), b.register()                      # 2 hits on the address
    statuses = [a.request("GET", "/v1/devices/me")[0], b.request("GET", "/v1/devices/me")[0],
                a.request("GET", "/v1/devices/me")[0]]
    assert statuses == [200, 200, 429]


def test_an_address_over_its_limit_is_refused_without_a_lookup(app_factory, settings_factory):
    app = app_factory(settings_factory(RATELIMIT_IP="1/minute"))
    tc = app.test_client()
    assert tc.get("/v1/devices/me", environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 401
    assert tc.get("/v1/devices/me", environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 429
    counters = _counting(app)
    resp = tc.get("/v1/devices/me", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) >= 1
    assert counters.calls == []
    assert tc.get("/v1/devices/me", environ_base={"REMOTE_ADDR": "10.0.0.10"}).status_code == 401  # others pass


def test_device_counters_are_shared_by_api_processes_through_redis(require_redis, app_factory, settings_factory):
    app_a = app_factory(settings_factory(RATELIMIT_DEVICE="2/minute"))
    app_b = app_factory(settings_factory(RATELIMIT_DEVICE="2/minute"))
    a = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app_a))
    a.register()
    b = CustosClient("http://localhost", a.key, a.device_id, flask_transport(app_b))
    assert [a.request("GET", "/v1/devices/me")[0], b.request("GET", "/v1/devices/me")[0],
            a.request("GET", "/v1/devices/me")[0]] == [200, 200, 429]


# -- one query for the device, no reload after commit ---------------------------------
def _statements(app):
    from app.extensions import db
    seen = []
    with app.app_context():
        engine = db.engine

    def record(_conn, _cursor, statement, _params, _context, _many):
        seen.append(" ".join(statement.split()).lower())
    event.listen(engine, "before_cursor_execute", record)
    return seen


def test_a_signed_request_reads_the_device_once_even_after_a_commit(app_factory, settings_factory):
    app = app_factory(settings_factory())
    client = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app))
    client.register()
    seen = _statements(app)
    assert client.request("PUT", "/v1/devices/me/push-token", {"push_token": "t1"})[0] == 200  # commits
    device_reads = [s for s in seen if s.startswith("select") and "from devices" in s]
    assert len(device_reads) == 1, seen
    seen.clear()
    assert client.request("GET", "/v1/devices/me")[0] == 200
    assert [s for s in seen if "from devices" in s].__len__() == 1
    assert all(s.startswith(("select", "insert into used_nonces")) for s in seen), seen
