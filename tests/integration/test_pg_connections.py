"""store.pg on a real PostgreSQL: a transaction that only read ends with COMMIT, so the
statements psycopg prepared on the connection survive it. A transaction that wrote
still rolls back and loses its writes. So does one in an error state. A pooled
connection the server closed is replaced at checkout, before anything runs on it; a
live one is kept."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from store.session import engine_options, install_engine_hooks

pytestmark = pytest.mark.usefixtures("require_postgres")

_PREPARED = text("SELECT count(*) FROM pg_prepared_statements")
_READ = text("SELECT key FROM used_nonces WHERE key = :key")
_WRITE = text("INSERT INTO used_nonces (key, expires_at) VALUES (:key, now())")


def _engine(url: str, hooks: bool = True):
    engine = create_engine(url, **{**engine_options(url), "pool_size": 1, "max_overflow": 0})
    if hooks:
        install_engine_hooks(engine)
    return engine


def _prepare_some(session: Session) -> int:
    """Run one SELECT past psycopg's prepare threshold (5); returns the backend's pid."""
    for _ in range(7):
        session.execute(_READ, {"key": "none"}).all()
    return session.execute(text("SELECT pg_backend_pid()")).scalar()


def _prepared_after_close(engine, first_pid: int) -> int:
    with Session(engine) as s:
        assert s.execute(text("SELECT pg_backend_pid()")).scalar() == first_pid   # the same connection
        return s.execute(_PREPARED).scalar()


def test_a_read_only_transaction_keeps_the_prepared_statements(clean_db):
    engine = _engine(clean_db)
    try:
        with Session(engine) as s:          # closes with a rollback
            pid = _prepare_some(s)
            assert s.execute(_PREPARED).scalar() >= 1
        assert _prepared_after_close(engine, pid) >= 1
    finally:
        engine.dispose()


def test_without_the_hook_psycopg_drops_them_at_rollback(clean_db):
    """What the hook is for: the same steps on a plain engine lose every prepared statement."""
    engine = _engine(clean_db, hooks=False)
    try:
        with Session(engine) as s:
            pid = _prepare_some(s)
            assert s.execute(_PREPARED).scalar() >= 1
        assert _prepared_after_close(engine, pid) == 0
    finally:
        engine.dispose()


def test_a_transaction_that_wrote_still_rolls_back(clean_db):
    engine = _engine(clean_db)
    try:
        with Session(engine) as s:
            s.execute(_READ, {"key": "none"}).all()            # reads first, then writes
            s.execute(_WRITE, {"key": "k987654"})
            s.rollback()
            s.execute(_READ, {"key": "none"}).all()            # the next transaction only reads
        with engine.connect() as other:
            assert other.execute(_READ, {"key": "k987654"}).first() is None
    finally:
        engine.dispose()


def test_what_a_write_marks_ends_with_its_transaction(clean_db):
    """After a committed write and after a rolled-back one, the next read-only transaction
    again ends with COMMIT (the mark does not stay on the pooled connection)."""
    engine = _engine(clean_db)
    try:
        with Session(engine) as s:
            s.execute(_WRITE, {"key": "k987655"})
            s.commit()
            pid = _prepare_some(s)
        assert _prepared_after_close(engine, pid) >= 1
        with Session(engine) as s:
            s.execute(_WRITE, {"key": "k987656"})
            s.rollback()
            pid = _prepare_some(s)
        assert _prepared_after_close(engine, pid) >= 1
        with engine.connect() as other:
            assert other.execute(_READ, {"key": "k987655"}).first() is not None
            assert other.execute(_READ, {"key": "k987656"}).first() is None
    finally:
        engine.dispose()


def test_a_failed_transaction_rolls_back_and_the_connection_works(clean_db):
    engine = _engine(clean_db)
    try:
        with Session(engine) as s:
            with pytest.raises(DBAPIError):
                s.execute(text("SELECT 1 / 0")).all()
            s.rollback()
            assert s.execute(text("SELECT 2")).scalar() == 2
    finally:
        engine.dispose()


def test_row_locks_of_a_read_only_transaction_are_released(clean_db):
    engine, other = _engine(clean_db), _engine(clean_db)
    try:
        with Session(engine) as s:
            s.execute(_WRITE, {"key": "k987657"})
            s.commit()
            s.execute(text("SELECT key FROM used_nonces WHERE key = 'k987657' FOR UPDATE")).all()
            s.rollback()                                    # ends with COMMIT: the lock goes
        with other.connect() as c:
            locked = c.execute(text("SELECT key FROM used_nonces WHERE key = 'k987657' FOR UPDATE NOWAIT"))
            assert locked.scalar() == "k987657"
    finally:
        engine.dispose()
        other.dispose()


def _pid(engine) -> int:
    with engine.connect() as c:
        return c.execute(text("SELECT pg_backend_pid()")).scalar()


def test_a_live_pooled_connection_is_kept(clean_db):
    engine = _engine(clean_db)
    try:
        first = _pid(engine)
        assert [_pid(engine) for _ in range(3)] == [first] * 3
    finally:
        engine.dispose()


def test_a_connection_the_server_closed_is_replaced_before_use(clean_db):
    """The backend of the pooled connection is terminated while it sits in the pool; the
    next checkout gets a new connection and its statement runs (no error, no retry by
    the caller). SQLAlchemy's pre-ping is off: only store.pg's check can catch this."""
    engine, admin = _engine(clean_db), _engine(clean_db)
    assert not engine.pool._pre_ping
    try:
        victim = _pid(engine)
        with admin.connect() as c:
            assert c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": victim}).scalar()
        time.sleep(0.2)                                   # the server's FIN reaches the socket
        with Session(engine) as s:
            assert s.execute(text("SELECT pg_backend_pid()")).scalar() != victim
            s.execute(_WRITE, {"key": "after-terminate"})
            s.commit()
        with admin.connect() as c:
            assert c.execute(_READ, {"key": "after-terminate"}).scalar() == "after-terminate"
    finally:
        engine.dispose()
        admin.dispose()


def test_a_lost_connection_at_the_end_of_a_read_only_transaction_fails_as_before(clean_db):
    """The backend dies while a read-only transaction is open: closing the session raises
    SQLAlchemy's own OperationalError (as a plain rollback does), not the driver's raw
    error, and the next session gets a working connection."""
    from sqlalchemy.exc import OperationalError
    engine, admin = _engine(clean_db), _engine(clean_db)
    try:
        s = Session(engine)
        victim = s.execute(text("SELECT pg_backend_pid()")).scalar()
        with admin.connect() as c:
            c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": victim})
        time.sleep(0.2)
        with pytest.raises(OperationalError):
            s.close()
        with Session(engine) as again:
            assert again.execute(text("SELECT pg_backend_pid()")).scalar() != victim
    finally:
        engine.dispose()
        admin.dispose()
