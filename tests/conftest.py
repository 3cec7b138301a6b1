"""Suite-wide fixtures: real PostgreSQL and Redis when reachable (required under CI),
SQLite and the embedded broker otherwise; a fresh, migrated database per run; apps built
with create_app(settings); a client transport over Flask's test client."""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import services

_state: dict = {}


def pytest_sessionstart(session):
    pg, redis = services.postgres_url(), services.redis_url()
    problems = services.check_reachable(pg, redis)
    if services.CI:
        if not pg:
            problems.append("PostgreSQL is not reachable on 127.0.0.1:5432 and DATABASE_URL is not set")
        if not redis:
            problems.append("Redis is not reachable on 127.0.0.1:6379 and REDIS_URL is not set")
    if problems and services.CI:
        pytest.exit("CI=true needs the real services:\n  " + "\n  ".join(problems), returncode=1)
    if problems:  # locally: fall back to embedded parts for what is broken
        pg = None if any(p.startswith("PostgreSQL") for p in problems) else pg
        redis = None if any(p.startswith("Redis") for p in problems) else redis
    _state.update(pg=pg, redis=redis)


def pytest_report_header(config):
    return [f"custos services: postgres={'yes' if _state.get('pg') else 'no (sqlite)'} "
            f"redis={'yes' if _state.get('redis') else 'no (embedded)'} ci={services.CI}"]


@pytest.fixture(scope="session")
def pg_admin_url():
    return _state.get("pg")


@pytest.fixture(scope="session")
def redis_url():
    return _state.get("redis")


@pytest.fixture
def require_redis(redis_url):
    if not redis_url:
        pytest.skip("needs Redis (runs under CI=true, where it is required)")
    return redis_url


@pytest.fixture
def require_postgres(pg_admin_url):
    if not pg_admin_url:
        pytest.skip("needs PostgreSQL (runs under CI=true, where it is required)")
    return pg_admin_url


@pytest.fixture(scope="session")
def database_url(pg_admin_url, tmp_path_factory):
    """A migrated database for the whole run: a scratch PostgreSQL database, or SQLite."""
    from tests.dbutil import upgrade
    if pg_admin_url:
        with services.scratch_database(pg_admin_url) as url:
            upgrade(url)
            yield url
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'custos.db'}"
        upgrade(url)
        yield url


@pytest.fixture
def clean_db(database_url):
    from tests.dbutil import truncate_all
    truncate_all(database_url)
    return database_url


@pytest.fixture
def clean_redis(redis_url):
    if redis_url:
        import redis as redis_lib
        redis_lib.Redis.from_url(redis_url).flushdb()
    return redis_url


def make_settings(database_url: str, redis_url: str | None, broker_url: str | None = None, **env):
    from config.settings import Settings
    base = {
        "CUSTOS_ENV": "test", "DATABASE_URL": database_url, "LOG_JSON": "0", "LOG_LEVEL": "WARNING",
        "BITCOIND_RPC_URL": env.pop("BITCOIND_RPC_URL", "http://127.0.0.1:9"),
        "BITCOIND_TIMEOUT": "3",
    }
    if redis_url:
        base["REDIS_URL"] = redis_url
    if broker_url:
        base["BROKER_URL"] = broker_url
    base.update({k: str(v) for k, v in env.items()})
    return Settings.from_env(base)


@pytest.fixture
def settings_factory(clean_db, clean_redis, tmp_path):
    def factory(**env):
        broker = None if clean_redis else f"sqla+sqlite:///{tmp_path / 'broker.db'}"
        return make_settings(clean_db, clean_redis, broker, **env)
    return factory


@pytest.fixture
def settings(settings_factory):
    return settings_factory()


@pytest.fixture
def app_factory():
    apps = []

    def factory(settings):
        from app import create_app
        app = create_app(settings)
        apps.append(app)
        return app
    yield factory
    from app.extensions import db
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(app_factory, settings):
    return app_factory(settings)


def flask_transport(app):
    """A CustosClient transport that drives Flask's test client (raw path and query)."""
    test_client = app.test_client()

    def send(method, url, headers, body):
        u = urlsplit(url)
        resp = test_client.open(u.path + (f"?{u.query}" if u.query else ""), method=method,
                                headers=headers, data=body, environ_base={"REMOTE_ADDR": "10.9.8.7"})
        return resp.status_code, dict(resp.headers), resp.data
    return send


@pytest.fixture
def client_factory(app):
    from client.sdk import CustosClient, DeviceKey

    def factory(kind="ed25519", target=None):
        return CustosClient("http://localhost", DeviceKey.generate(kind), transport=flask_transport(target or app))
    return factory


# -- chain ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def chain_node(tmp_path_factory):
    """One regtest node for the run: devnet in-process, or a real bitcoind when BITCOIND
    names its binary. Has a funded `faucet` wallet."""
    from devnet.harness import start_node
    with start_node(tmp_path_factory.mktemp("chain")) as node:
        rpc = node.rpc()
        rpc.createwallet("faucet")
        faucet = node.rpc("faucet")
        rpc.generatetoaddress(110, faucet.getnewaddress())
        node.faucet = faucet
        yield node


@pytest.fixture
def mine(chain_node, follower):
    """mine(n=1): mine n blocks (rewards to the faucet), wait for Core's wallet
    notifications (the optional mirror), then run a block-follower pass so the chain
    index (balances, history, spend states) has seen them."""
    def _mine(n: int = 1):
        rpc = chain_node.rpc()
        hashes = rpc.generatetoaddress(n, chain_node.faucet.getnewaddress())
        rpc.syncwithvalidationinterfacequeue()
        follower.run_once()
        return hashes
    return _mine


@pytest.fixture(scope="session")
def master_key():
    import base64
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def chain_settings(settings_factory, chain_node, master_key):
    """Settings pointing at the test chain, with a random master key and a per-test
    wallet prefix (wallet names never collide across tests)."""
    import secrets
    return settings_factory(BITCOIND_RPC_URL=chain_node.url, BITCOIND_RPC_USER=chain_node.user,
                            BITCOIND_RPC_PASSWORD=chain_node.password, BITCOIND_TIMEOUT=60,
                            BITCOIND_WALLET_PREFIX=f"t{secrets.token_hex(3)}-", MASTER_KEY=master_key)


@pytest.fixture
def follower(chain_settings):
    """The block follower on this test's database and chain (the cosigner's listener
    wired in), started at the node's current tip."""
    from config.bootstrap import chain_follower
    f = chain_follower(chain_settings, lock_wait=30)
    f.run_once()
    return f


@pytest.fixture
def chain_app(app_factory, chain_settings, follower):
    return app_factory(chain_settings)
