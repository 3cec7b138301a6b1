"""Readiness probes: each returns {"ok": bool, "ms": float, "detail": str} and never
raises; details name the failure class, never a URL with credentials."""
from __future__ import annotations

import time

from sqlalchemy import text


def _probe(fn) -> dict:
    started = time.perf_counter()
    try:
        detail = fn() or "ok"
        ok = True
    except Exception as exc:  # a probe reports, it does not crash the endpoint
        ok, detail = False, f"{type(exc).__name__}"
        msg = str(exc).split("\n")[0][:120]
        if msg and "@" not in msg:
            detail += f": {msg}"
    return {"ok": ok, "ms": round((time.perf_counter() - started) * 1000, 1), "detail": detail}


def check_database(engine) -> dict:
    def run():
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return engine.dialect.name
    return _probe(run)


_broker_engines: dict = {}


def _broker_engine(url: str):
    """A plain engine for the embedded broker's SQLite file (no pragmas), one per URL."""
    if url not in _broker_engines:
        from sqlalchemy import create_engine
        _broker_engines[url] = create_engine(url, connect_args={"timeout": 5})
    return _broker_engines[url]


def check_broker(settings, redis) -> dict:
    def run():
        if settings.embedded_broker:
            # kombu owns this file: read it without our WAL/pragma hook (switching its journal
            # mode needs an exclusive lock, which kombu's 50 ms polling makes fail as "locked")
            with _broker_engine(settings.broker_url[len("sqla+"):]).connect() as conn:
                conn.execute(text("SELECT count(*) FROM sqlite_master"))
            return "embedded (sqlalchemy transport)"
        import redis as redis_lib
        client = redis if (redis is not None and settings.broker_url == settings.redis_url) else \
            redis_lib.Redis.from_url(settings.broker_url, socket_timeout=3, socket_connect_timeout=3)
        client.ping()
        return "redis"
    return _probe(run)


def check_bitcoind(rpc) -> dict:
    def run():
        info = rpc.with_timeout(3).call("getblockchaininfo")
        return f"{info.get('chain')} height {info.get('blocks')}"
    return _probe(run)


def check_all(d, engine) -> dict:
    return {"database": check_database(engine), "broker": check_broker(d.settings, d.redis),
            "bitcoind": check_bitcoind(d.bitcoind)}
