"""Finding the real PostgreSQL and Redis for the suite.

DATABASE_URL / REDIS_URL win when set; otherwise the local servers are probed
(PostgreSQL 127.0.0.1:5432 user postgres database test, Redis 127.0.0.1:6379). Under
CI=true both must answer or the run fails before any test.
"""
from __future__ import annotations

import os
import secrets
import socket
from contextlib import contextmanager

CI = os.environ.get("CI", "").lower() == "true"
LOCAL_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
LOCAL_REDIS = "redis://127.0.0.1:6379/15"


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def postgres_url() -> str | None:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url if url.startswith("postgresql") else None
    return LOCAL_PG if _port_open("127.0.0.1", 5432) else None


def redis_url() -> str | None:
    url = os.environ.get("REDIS_URL")
    if url:
        return url
    return LOCAL_REDIS if _port_open("127.0.0.1", 6379) else None


def check_reachable(pg: str | None, redis: str | None) -> list[str]:
    """Problems that make the real services unusable (empty list: fine)."""
    problems = []
    if pg:
        try:
            import psycopg
            with psycopg.connect(_libpq(pg), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except Exception as exc:
            problems.append(f"PostgreSQL at {pg.split('@')[-1]}: {type(exc).__name__}: {exc}")
    if redis:
        try:
            import redis as redis_lib
            redis_lib.Redis.from_url(redis, socket_connect_timeout=3).ping()
        except Exception as exc:
            problems.append(f"Redis at {redis.split('@')[-1]}: {type(exc).__name__}")
    return problems


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@contextmanager
def scratch_database(admin_url: str, prefix: str = "custos_test"):
    """Create an empty PostgreSQL database for one run; drop it afterwards. Yields its URL."""
    import psycopg
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def worker_broker_url(redis_url: str) -> str:
    """The Redis db for a test's Celery broker: 8 above the run's own db (REDIS_URL's),
    so engineers sharing one Redis with their own db numbers never consume each other's
    tasks, and the per-test flushdb of the own db never drops the broker's bindings.
    The worker fixtures run one module at a time and flush it when they start."""
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(redis_url)
    own = int(parts.path.strip("/") or 0)
    return urlunsplit((parts.scheme, parts.netloc, f"/{(own + 8) % 16}", "", ""))
