"""Engines and sessions outside Flask (workers, CLIs, tests).

`engine_for(url)` caches one engine per URL per process (engines are pools; never build
one per task). SQLite gets a busy timeout and WAL so the API, the worker and beat can
share the embedded database file.

SQLite writers queue on a file lock (`<database>-writer.lock`, flock) taken just before
a transaction's first write and released right after its commit or rollback. SQLite's
own busy handler sleeps 1, 2, 5, … up to 100 ms between attempts, so under concurrent
writers the write lock stood free while every waiter slept (4 concurrent cosign clients
were slower than one, p99 in the hundreds of ms). A waiter on the file lock blocks in
flock (in a helper thread, for the timeout) and the kernel wakes it when the lock is
released: no idle gap and no CPU spent polling. It polls first, for up to 4 ms (most
write transactions — a message, an ack — are shorter, and a poll hands the lock over
faster than waking a thread); a longer wait (behind a cosign, whose transaction
includes the broadcast) blocks. Issue #19: polling all the way cost 4 concurrent cosigns
on 2 cores ~1 ms of API CPU per submit and their p99 (≈120 → ≈80 ms). The busy timeout
stays as the backstop: after `WRITER_WAIT` s on the file lock, or at once for a second
connection of a thread whose other connection holds it, the write goes ahead on
SQLite's own lock and its timeout.
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

from store import pg

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


WRITER_WAIT = 30.0          # seconds on the writers' file lock before relying on SQLite's
WRITER_POLL = (0.00005, 0.0002, 0.004)   # first and longest pause between attempts, and how long
#                                          to poll (s) before blocking in a helper thread
_thread_locks = threading.local()


def _held_here() -> set:
    """The writer-lock paths this thread holds (through any of its connections)."""
    held = getattr(_thread_locks, "paths", None)
    if held is None:
        held = _thread_locks.paths = set()
    return held
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLAC", "BEGIN")


def _poll_for_lock(fd: int) -> bool:
    """Try `fd`'s exclusive flock without blocking for about WRITER_POLL[2] seconds, with
    short pauses: most write transactions (a message, an ack) hold the lock for well under
    a millisecond, and a poll hands it over faster than waking a helper thread (measured:
    blocking at once cost the messaging bench ~4%). True when the lock is held via `fd`."""
    first, longest, budget = WRITER_POLL
    pause, waited = first, 0.0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if waited >= budget:
                return False
        time.sleep(pause)
        waited += pause
        pause = min(pause * 2, longest)


def _wait_for_lock(fd: int, timeout: float) -> bool:
    """Block on `fd`'s exclusive flock for at most `timeout` seconds. The blocking call
    runs in a helper thread (flock has no timeout of its own): the kernel wakes it the
    moment the holder lets go, so a waiter burns no CPU polling and a freed lock never
    idles. True: the lock is held through `fd`. False: `fd` is no longer the caller's —
    the helper closes it, at once on an error, or as soon as it gets the lock after the
    caller gave up (which releases it again)."""
    done, guard = threading.Event(), threading.Lock()
    state = {"got": False, "abandoned": False}

    def wait() -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            got = True
        except OSError:
            got = False
        with guard:
            if state["abandoned"] or not got:
                os.close(fd)
            state["got"] = got
            done.set()

    threading.Thread(target=wait, name="sqlite-writer-wait", daemon=True).start()
    done.wait(timeout)
    with guard:
        if done.is_set():
            return state["got"]
        state["abandoned"] = True
    return False


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
        if not _poll_for_lock(fd) and not _wait_for_lock(fd, WRITER_WAIT):
            return False                 # SQLite's busy timeout decides from here
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
    """create_engine() keyword arguments suitable for `url` (also used by Flask-SQLAlchemy).
    Pair them with `install_engine_hooks` on the engine: on PostgreSQL the pool's liveness
    check at checkout is store.pg's, not SQLAlchemy's pre-ping."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False, "factory": WriterQueueConnection}}
    # no pool_pre_ping: store.pg checks a checked-out connection without a round trip
    return {"pool_size": 5, "max_overflow": 10}


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=FULL")   # every commit fsyncs, except inside `unsynced`
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
    """WAL, busy timeout, foreign keys and synchronous=FULL on every new SQLite connection.
    Idempotent."""
    if engine.dialect.name == "sqlite" and not event.contains(engine, "connect", _sqlite_pragmas):
        event.listen(engine, "connect", _sqlite_pragmas)


def install_engine_hooks(engine: Engine) -> None:
    """What every Custos engine gets: SQLite's pragmas (install_sqlite_pragmas), and on
    PostgreSQL read-only transactions that end with COMMIT and a liveness check at
    checkout without a round trip (store.pg). Idempotent."""
    install_sqlite_pragmas(engine)
    pg.install(engine)


def engine_for(url: str) -> Engine:
    """The process-wide engine for `url`."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = create_engine(url, **engine_options(url))
            install_engine_hooks(engine)
            _engines[url] = engine
        return engine


@contextlib.contextmanager
def session_scope(url: str):
    """A session in one transaction: commits on success, rolls back on error."""
    factory = sessionmaker(bind=engine_for(url), expire_on_commit=False)
    with factory() as session, session.begin():
        yield session
