"""Engines and sessions outside Flask (workers, CLIs, tests).

`engine_for(url)` caches one engine per URL per process (engines are pools; never build
one per task). SQLite gets a busy timeout and WAL so the API, the worker and beat can
share the embedded database file.

SQLite writers queue on a file lock (`<database>-writer.lock`, flock) taken just before
a transaction's first write and released right after its commit or rollback. SQLite's
own busy handler sleeps 1, 2, 5, … up to 100 ms between attempts, so under concurrent
writers the write lock stood free while every waiter slept (4 concurrent cosign clients
were slower than one, p99 in the hundreds of ms); a waiter on the file lock polls every
0.2 ms at most. The busy timeout stays as the backstop: after `WRITER_WAIT` s on the
file lock, or at once for a second connection of a thread whose other connection holds
it, the write goes ahead on SQLite's own lock and its timeout.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


WRITER_WAIT = 30.0          # seconds on the writers' file lock before relying on SQLite's
WRITER_POLL = (0.00005, 0.0002)   # first and longest pause between attempts (s): a freed lock idles ≤ 0.2 ms
_thread_locks = threading.local()


def _held_here() -> set:
    """The writer-lock paths this thread holds (through any of its connections)."""
    held = getattr(_thread_locks, "paths", None)
    if held is None:
        held = _thread_locks.paths = set()
    return held
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLAC", "BEGIN")


class _Cursor(sqlite3.Cursor):
    def _queued(self, run, sql, args):
        conn = self.connection
        took = conn._before_statement(sql)
        try:
            return run(sql, args)
        finally:
            if took and not conn.in_transaction:
                conn._release_writer()

    def execute(self, sql, parameters=()):
        return self._queued(super().execute, sql, parameters)

    def executemany(self, sql, seq_of_parameters):
        return self._queued(super().executemany, sql, seq_of_parameters)


class WriterQueueConnection(sqlite3.Connection):
    """A sqlite3 connection whose write transactions queue on a per-database file lock
    (see the module docstring). In-memory databases do not queue."""

    def __init__(self, database, *args, **kwargs):
        super().__init__(database, *args, **kwargs)
        name = os.fspath(database) if not isinstance(database, bytes) else database.decode()
        memory = name in ("", ":memory:") or name.startswith("file:") or "mode=memory" in name
        self._lock_path = None if memory else os.path.abspath(name) + "-writer.lock"
        self._lock_fd = None

    def cursor(self, factory=_Cursor):
        return super().cursor(factory)

    @property
    def holds_writer_lock(self) -> bool:
        """True from the statement that took the writers' lock to the commit or rollback
        that releases it: no other queued writer of this database runs meanwhile."""
        return self._lock_fd is not None

    def _before_statement(self, sql: str) -> bool:
        """Take the writers' lock before the statement that opens a write transaction;
        True when this call took it."""
        if self._lock_path is None or self._lock_fd is not None or self.in_transaction:
            return False
        if sql.lstrip()[:6].upper() not in _WRITES:
            return False
        held = _held_here()
        if self._lock_path in held:
            return False                 # this thread's other connection holds it: SQLite decides
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline, pause = time.monotonic() + WRITER_WAIT, WRITER_POLL[0]
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    return False         # SQLite's busy timeout decides from here
                time.sleep(pause)
                pause = min(pause * 2, WRITER_POLL[1])
        self._lock_fd = fd
        held.add(self._lock_path)
        return True

    def _release_writer(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            _held_here().discard(self._lock_path)
            os.close(fd)                 # closing the descriptor releases the flock

    def commit(self):
        try:
            super().commit()
        finally:
            self._release_writer()

    def rollback(self):
        try:
            super().rollback()
        finally:
            self._release_writer()

    def close(self):
        try:
            super().close()
        finally:
            self._release_writer()


def engine_options(url: str) -> dict:
    """create_engine() keyword arguments suitable for `url` (also used by Flask-SQLAlchemy)."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False, "factory": WriterQueueConnection}}
    return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 10}


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=FULL")   # every commit fsyncs (devices.nonces relaxes only its own)
    cur.close()


@contextlib.contextmanager
def unsynced(conn):
    """The transaction run inside this block on `conn` (a SQLAlchemy Connection; a
    Session's is `session.connection()`) commits without an fsync on SQLite.

    For writes whose loss in a power failure only repeats harmless work — a request's
    nonce, an acknowledgement (the message is delivered again; clients recognise its guid).
    SQLite in WAL mode keeps such a commit through a crash of the process, and the next
    ordinary commit of any connection syncs the WAL file with it. On SQLite this sets
    `synchronous=NORMAL` for the block and FULL again on the way out, also on failure (a
    transaction still open there is rolled back first: end it inside the block). Not
    relaxed when `conn` already has a transaction open (SQLite cannot change it then),
    and not on PostgreSQL: there a `SET LOCAL synchronous_commit = off` costs one more
    round trip, more client CPU than the WAL flush it saves, and no writer waits behind
    the flush (measured for issue #19)."""
    raw = conn.connection.dbapi_connection if conn.dialect.name == "sqlite" else None
    if raw is None or raw.in_transaction:
        yield
        return
    raw.execute("PRAGMA synchronous=NORMAL")
    try:
        yield
    finally:
        if raw.in_transaction:
            raw.rollback()
        raw.execute("PRAGMA synchronous=FULL")


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
