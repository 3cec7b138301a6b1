"""Engines and sessions outside Flask (workers, CLIs, tests).

`engine_for(url)` caches one engine per URL per process (engines are pools; never build
one per task). SQLite gets a busy timeout and WAL so the API, the worker and beat can
share the embedded database file.
"""
from __future__ import annotations

import contextlib
import threading

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def engine_options(url: str) -> dict:
    """create_engine() keyword arguments suitable for `url` (also used by Flask-SQLAlchemy)."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 10}


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def install_sqlite_pragmas(engine: Engine) -> None:
    """WAL, busy timeout and foreign keys on every new SQLite connection. Idempotent."""
    if engine.dialect.name == "sqlite" and not event.contains(engine, "connect", _sqlite_pragmas):
        event.listen(engine, "connect", _sqlite_pragmas)


def engine_for(url: str) -> Engine:
    """The process-wide engine for `url`."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = create_engine(url, **engine_options(url))
            install_sqlite_pragmas(engine)
            _engines[url] = engine
        return engine


@contextlib.contextmanager
def session_scope(url: str):
    """A session in one transaction: commits on success, rolls back on error."""
    factory = sessionmaker(bind=engine_for(url), expire_on_commit=False)
    with factory() as session, session.begin():
        yield session
