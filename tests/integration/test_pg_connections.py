"""store.pg on a real PostgreSQL: a transaction that only read ends with COMMIT, so the
statements psycopg prepared on the connection survive it. A transaction that wrote
still rolls back and loses its writes. So does one in an error state. A pooled
connection the server closed is replaced at checkout, before anything runs on it; a
live one is kept."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from store.session import engine_options, install_engine_hooks

pytestmark = pytest.mark.usefixtures("require_postgres")

_PREPARED = text("SELECT count(*) FROM pg_prepared_statements")
_READ = text("SELECT key FROM used_nonces WHERE key = :key")
_WRITE = text("INSERT INTO used_nonces (key, expires_at) VALUES (:key, now())")
_PID = text("SELECT pg_backend_pid()")


@pytest.fixture
def engines(clean_db):
    """engines(hooks=True): a one-connection engine on the test database, disposed after the test."""
    made = []

    def make(hooks: bool = True):
        engine = create_engine(clean_db, **{**engine_options(clean_db), "pool_size": 1, "max_overflow": 0})
        if hooks:
            install_engine_hooks(engine)
        made.append(engine)
        return engine
    yield make
    for engine in made:
        engine.dispose()


def _pid(engine) -> int:
    with engine.connect() as c:
        return c.execute(_PID).scalar()


def _terminate(admin, pid: int) -> None:
    """End backend `pid` from `admin`'s connection and give its FIN time to reach the socket."""
    with admin.connect() as c:
        assert c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    time.sleep(0.2)


def _prepare_some(session: Session) -> int:
    """Run one SELECT past psycopg's prepare threshold (5); returns the backend's pid."""
    for _ in range(7):
        session.execute(_READ, {"key": "none"}).all()
    return session.execute(_PID).scalar()


def _prepared_after_close(engine, first_pid: int) -> int:
    with Session(engine) as s:
        assert s.execute(_PID).scalar() == first_pid   # the same connection
        return s.execute(_PREPARED).scalar()


def test_a_read_only_transaction_keeps_the_prepared_statements(engines):
    engine = engines()
    with Session(engine) as s:          # closes with a rollback
        pid = _prepare_some(s)
        assert s.execute(_PREPARED).scalar() >= 1
    assert _prepared_after_close(engine, pid) >= 1


def test_without_the_hook_psycopg_drops_them_at_rollback(engines):
    """What the hook is for: the same steps on a plain engine lose every prepared statement."""
    engine = engines(hooks=False)
    with Session(engine) as s:
        pid = _prepare_some(s)
        assert s.execute(_PREPARED).scalar() >= 1
    assert _prepared_after_close(engine, pid) == 0


def test_a_transaction_that_wrote_still_rolls_back(engines):
    engine = engines()
    with Session(engine) as s:
        s.execute(_READ, {"key": "none"}).all()            # reads first, then writes
        s.execute(_WRITE, {"key": "k987654"})
        s.rollback()
        s.execute(_READ, {"key": "none"}).all()            # the next transaction only reads
    with engine.connect() as other:
        assert other.execute(_READ, {"key": "k987654"}).first() is None


def test_what_a_write_marks_ends_with_its_transaction(engines):
    """After a committed write and after a rolled-back one, the next read-only transaction
    again ends with COMMIT (the mark does not stay on the pooled connection)."""
    engine = engines()
    for key, end in (("k987655", Session.commit), ("k987656", Session.rollback)):
        with Session(engine) as s:
            s.execute(_WRITE, {"key": key})
            end(s)
            pid = _prepare_some(s)
        assert _prepared_after_close(engine, pid) >= 1
    with engine.connect() as other:
        assert other.execute(_READ, {"key": "k987655"}).first() is not None
        assert other.execute(_READ, {"key": "k987656"}).first() is None


def test_a_failed_transaction_rolls_back_and_the_connection_works(engines):
    with Session(engines()) as s:
        with pytest.raises(DBAPIError):
            s.execute(text("SELECT 1 / 0")).all()
        s.rollback()
        assert s.execute(text("SELECT 2")).scalar() == 2


def test_row_locks_of_a_read_only_transaction_are_released(engines):
    engine, other = engines(), engines()
    with Session(engine) as s:
        s.execute(_WRITE, {"key": "k987657"})
        s.commit()
        s.execute(text("SELECT key FROM used_nonces WHERE key = 'k987657' FOR UPDATE")).all()
        s.rollback()                                    # ends with COMMIT: the lock goes
    with other.connect() as c:
        locked = c.execute(text("SELECT key FROM used_nonces WHERE key = 'k987657' FOR UPDATE NOWAIT"))
        assert locked.scalar() == "k987657"


def test_a_live_pooled_connection_is_kept(engines):
    engine = engines()
    first = _pid(engine)
    assert [_pid(engine) for _ in range(3)] == [first] * 3


def test_a_connection_the_server_closed_is_replaced_before_use(engines):
    """The backend of the pooled connection is terminated while it sits in the pool; the
    next checkout gets a new connection and its statement runs (no error, no retry by
    the caller). SQLAlchemy's pre-ping is off: only store.pg's check can catch this."""
    engine, admin = engines(), engines()
    assert not engine.pool._pre_ping
    victim = _pid(engine)
    _terminate(admin, victim)
    with Session(engine) as s:
        assert s.execute(_PID).scalar() != victim
        s.execute(_WRITE, {"key": "after-terminate"})
        s.commit()
    with admin.connect() as c:
        assert c.execute(_READ, {"key": "after-terminate"}).scalar() == "after-terminate"


def test_a_lost_connection_at_the_end_of_a_read_only_transaction_fails_as_before(engines):
    """The backend dies while a read-only transaction is open: closing the session raises
    SQLAlchemy's own OperationalError (as a plain rollback does), not the driver's raw
    error, and the next session gets a working connection."""
    engine, admin = engines(), engines()
    s = Session(engine)
    victim = s.execute(_PID).scalar()
    _terminate(admin, victim)
    with pytest.raises(OperationalError):
        s.close()
    with Session(engine) as again:
        assert again.execute(_PID).scalar() != victim
