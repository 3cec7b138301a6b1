"""End to end over real HTTP: the API under gunicorn and a Celery worker (real
processes, their logs captured), two reference clients running the Signal protocol
(python-axolotl) become contacts through an invite, exchange messages, and neither the
database nor any log ever holds a plaintext or the invite code. A stranger is refused."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from client.messaging import MessagingClient, SignalMessenger
from client.sdk import ApiError, DeviceKey
from tests import services
from tests.dbutil import upgrade
from tools.stack import free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(pg_admin_url, redis_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("msg-e2e")
    with ExitStack() as stack:
        if pg_admin_url:
            db_url = stack.enter_context(services.scratch_database(pg_admin_url, prefix="custos_msg_e2e"))
        else:
            db_url = f"sqlite:///{tmp / 'custos.db'}"
        upgrade(db_url)
        env = {**os.environ, "CUSTOS_ENV": "test", "DATABASE_URL": db_url, "LOG_JSON": "1", "LOG_LEVEL": "DEBUG",
               "PYTHONUNBUFFERED": "1", "BITCOIND_RPC_URL": "http://127.0.0.1:9", "RECONCILE_INTERVAL": "1"}
        if redis_url:
            import redis as redis_lib
            base = redis_url.rsplit("/", 1)[0]
            env.update(REDIS_URL=f"{base}/11", BROKER_URL=f"{base}/12")
            for n in (11, 12):
                redis_lib.Redis.from_url(f"{base}/{n}").flushdb()
        else:
            env.pop("REDIS_URL", None)
            env["BROKER_URL"] = f"sqla+sqlite:///{tmp / 'broker.db'}"
        port = free_port()
        logs = {name: tmp / f"{name}.log" for name in ("api", "worker")}
        procs = []
        for name, args in (
                ("api", [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{port}",
                         "--workers", "2", "--log-level", "debug"]),
                ("worker", [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker",
                            "--concurrency", "2", "--without-gossip", "--without-mingle",
                            "-n", f"e2e-msg-{os.getpid()}@%h"])):
            out = stack.enter_context(open(logs[name], "w"))
            proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            procs.append(proc)
            stack.callback(_stop, proc)
        url = f"http://127.0.0.1:{port}"
        assert wait_http(url + "/v1/health", 60, procs), logs["api"].read_text()[-2000:]
        yield {"url": url, "db": db_url, "logs": logs, "tmp": tmp}


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def new_messenger(server, name) -> SignalMessenger:
    api = MessagingClient(server["url"], DeviceKey.generate())
    api.register()
    return SignalMessenger(api, server["tmp"] / f"{name}-{secrets.token_hex(4)}.signal.db")


def all_stored_values(db_url):
    """Every value of every column of every table (bytes and text)."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            for table in inspect(engine).get_table_names():
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    for value in row:
                        yield table, value
    finally:
        engine.dispose()


def leaks(haystack_values, needles: list[bytes]):
    found = []
    for table, value in haystack_values:
        raw = value if isinstance(value, (bytes, bytearray, memoryview)) else str(value).encode()
        raw = bytes(raw)
        found += [(table, n[:12]) for n in needles if n in raw]
    return found


def test_two_contacts_exchange_signal_messages_and_the_server_never_sees_plaintext(server):
    alice, bob = new_messenger(server, "alice"), new_messenger(server, "bob")
    assert alice.setup() == 100 and bob.setup() == 100

    invite = alice.invite("Alice", receive_address="bcrt1qalicereceive")
    contact = bob.accept(invite["qr_payload"], "Bob")
    assert contact["device_id"] == alice.api.device_id
    assert [c["device_id"] for c in alice.api.contacts()] == [bob.api.device_id]

    secrets_sent = [f"recovery shard {i}: {secrets.token_hex(16)}".encode() for i in range(3)]
    replies = [f"got it {i} {secrets.token_hex(16)}".encode() for i in range(2)]
    for s in secrets_sent:
        bob.send(alice.api.device_id, s)                # first one is a PreKeyWhisperMessage
    got = alice.receive()
    assert [(r.sender, r.plaintext) for r in got] == [(bob.api.device_id, s) for s in secrets_sent]
    for r in replies:
        alice.send(bob.api.device_id, r)
    assert [r.plaintext for r in bob.receive()] == replies
    follow_up = b"and one more after the ratchet turned " + secrets.token_hex(8).encode()
    bob.send(alice.api.device_id, follow_up)
    assert [r.plaintext for r in alice.receive()] == [follow_up]
    assert alice.api.fetch_messages()["messages"] == [] and bob.api.fetch_messages()["messages"] == []
    assert alice.api.key_count() == 99                  # bob's session consumed one prekey
    assert len(alice.store.inbox()) == 4                 # the client retains what it received

    # a stranger can neither fetch a bundle nor send
    carol = new_messenger(server, "carol")
    carol.setup()
    with pytest.raises(ApiError) as err:
        carol.api.fetch_bundle(alice.api.device_id)
    assert (err.value.status, err.value.code) == (403, "not_permitted")
    with pytest.raises(ApiError) as err:
        carol.api.send_envelopes([{"to": alice.api.device_id, "ciphertext": "AAAA", "type": 2}])
    assert (err.value.status, err.value.code) == (403, "not_permitted")

    # nothing secret at rest or in any log
    needles = secrets_sent + replies + [follow_up, invite["invite_code"].encode()]
    assert leaks(all_stored_values(server["db"]), needles) == []
    for name, path in server["logs"].items():
        content = path.read_bytes()
        assert content, f"{name} log is empty"
        assert [n[:12] for n in needles if n in content] == [], f"secret in the {name} log"
    # the worker did deliver the content-free pushes (outbox sender)
    import time
    deadline = time.monotonic() + 20
    while b"push (outbox)" not in server["logs"]["worker"].read_bytes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert b"kind=sync" in server["logs"]["worker"].read_bytes()
    for m in (alice, bob, carol):
        m.close()


def test_cli_contacts_and_messages(server, tmp_path):
    def cli(state, *args):
        proc = subprocess.run([sys.executable, "-m", "client", "--server", server["url"], "--state", str(state),
                               *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        import json
        return json.loads(proc.stdout)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a_id = cli(a, "register")["device_id"]
    b_id = cli(b, "register")["device_id"]
    qr = cli(a, "contacts", "invite", "--name", "Ann")["qr_payload"]
    assert cli(b, "contacts", "accept", qr, "--name", "Ben")["device_id"] == a_id
    assert [c["display_name"] for c in cli(a, "contacts", "list")["contacts"]] == ["Ben"]
    cli(b, "messages", "send", a_id, "hello over signal")
    assert [(m["from"], m["text"]) for m in cli(a, "messages", "fetch")["messages"]] == [(b_id, "hello over signal")]
    assert cli(a, "whoami")["device_id"] == a_id
    assert oct((tmp_path / "a.json.signal.db").stat().st_mode & 0o777) == "0o600"
