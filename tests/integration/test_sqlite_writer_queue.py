"""SQLite writers queue on the database's writer file lock (store.session): concurrent
write transactions from many connections all commit, each holds the lock only while its
transaction is open, and a second writer of the same thread falls back to SQLite's own
lock instead of waiting for itself forever."""
from __future__ import annotations

import fcntl
import os
import threading

import pytest
from sqlalchemy import create_engine, text

from store import session as store_session
from store.session import engine_options, install_sqlite_pragmas
from tests.waiting import wait_for


def _engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    engine = create_engine(url, **engine_options(url))
    install_sqlite_pragmas(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER PRIMARY KEY, who TEXT)"))
    return engine


def _lock_is_free(path) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_concurrent_writers_all_commit_in_turn(tmp_path):
    engine = _engine(tmp_path)
    errors, per_thread = [], 40

    def writer(k):
        try:
            for i in range(per_thread):
                with engine.begin() as conn:
                    # read the tail then write it + 1: only correct if writers never overlap
                    conn.execute(text("UPDATE t SET who = who WHERE n = -1"))
                    top = conn.execute(text("SELECT coalesce(max(n), 0) FROM t")).scalar()
                    conn.execute(text("INSERT INTO t (n, who) VALUES (:n, :w)"), {"n": top + 1, "w": f"{k}-{i}"})
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(exc))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*), max(n) FROM t")).one() == (6 * per_thread, 6 * per_thread)
    assert _lock_is_free(f"{tmp_path / 'q.db'}-writer.lock")
    engine.dispose()


def test_the_writer_lock_is_held_only_inside_a_write_transaction(tmp_path):
    engine = _engine(tmp_path)
    lock = f"{tmp_path / 'q.db'}-writer.lock"
    with engine.connect() as conn:
        conn.execute(text("SELECT count(*) FROM t"))          # a read takes nothing
        assert _lock_is_free(lock)
        conn.execute(text("INSERT INTO t (n, who) VALUES (1, 'a')"))
        assert not _lock_is_free(lock)                        # from the first write ...
        conn.commit()
        assert _lock_is_free(lock)                            # ... to the commit
        conn.execute(text("UPDATE t SET who = 'b' WHERE n = 1"))
        conn.rollback()
        assert _lock_is_free(lock)                            # or the rollback
    with engine.connect() as conn:
        assert conn.execute(text("SELECT who FROM t WHERE n = 1")).scalar() == "a"
    engine.dispose()


def test_a_second_writer_in_the_same_thread_does_not_wait_for_itself(tmp_path, monkeypatch):
    """The first connection holds the writer lock and SQLite's write lock; a second one
    in the same thread does not queue behind its own thread and gets SQLite's usual
    'database is locked' once its busy timeout passes, as without the queue."""
    import sqlite3
    monkeypatch.setattr(store_session, "WRITER_WAIT", 3600)   # it must not be what ends the wait
    path = str(tmp_path / "q.db")
    _engine(tmp_path).dispose()
    first = sqlite3.connect(path, timeout=0.1, factory=store_session.WriterQueueConnection)
    second = sqlite3.connect(path, timeout=0.1, factory=store_session.WriterQueueConnection)
    try:
        first.cursor().execute("INSERT INTO t (n, who) VALUES (1, 'first')")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            second.cursor().execute("INSERT INTO t (n, who) VALUES (2, 'second')")
        first.commit()
        second.rollback()
        second.cursor().execute("INSERT INTO t (n, who) VALUES (2, 'second')")
        second.commit()
    finally:
        first.close()
        second.close()
    assert _lock_is_free(f"{path}-writer.lock")


def test_in_memory_databases_do_not_queue():
    import sqlite3
    conn = sqlite3.connect(":memory:", factory=store_session.WriterQueueConnection)
    try:
        conn.cursor().execute("CREATE TABLE t (n INTEGER)")
        conn.cursor().execute("INSERT INTO t VALUES (1)")
        assert conn._lock_fd is None and conn._lock_path is None
        conn.commit()
    finally:
        conn.close()


def _hold_lock(path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _waiters() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sqlite-writer-wait"]


def test_a_long_wait_blocks_in_a_helper_thread_until_the_holder_lets_go(tmp_path):
    """Past the short poll the writer blocks in flock (a helper thread), and goes ahead
    the moment the holder releases: its write commits, in order, and nothing is left
    waiting or holding the lock."""
    engine = _engine(tmp_path)
    lock = f"{tmp_path / 'q.db'}-writer.lock"
    holder = _hold_lock(lock)
    done = threading.Event()

    def writer():
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (n, who) VALUES (1, 'waited')"))
        done.set()
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_for(lambda: len(_waiters()) == 1, what="the writer blocked in the helper", timeout=10,
                 interval=0.005)                               # blocked in the helper, not polling
        assert not done.is_set()
    finally:
        os.close(holder)                                     # the holder lets go
    thread.join(10)
    assert done.is_set()
    wait_for(lambda: not _waiters(), what="no helper left waiting", timeout=10, interval=0.005)
    assert _lock_is_free(lock)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT who FROM t")).scalars().all() == ["waited"]
    engine.dispose()


def test_a_writer_that_gives_up_on_the_queue_still_commits_and_its_helper_lets_go(tmp_path, monkeypatch):
    """After WRITER_WAIT the write goes ahead on SQLite's own lock (the holder here holds
    only the file lock); the abandoned helper releases the file lock as soon as it gets it."""
    monkeypatch.setattr(store_session, "WRITER_WAIT", 0.2)
    engine = _engine(tmp_path)
    lock = f"{tmp_path / 'q.db'}-writer.lock"
    holder = _hold_lock(lock)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (n, who) VALUES (1, 'without the queue')"))
        assert len(_waiters()) == 1                          # still blocked in flock, abandoned
    finally:
        os.close(holder)
    wait_for(lambda: not _waiters(), what="no helper left waiting", timeout=10, interval=0.005)
    assert _lock_is_free(lock)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT who FROM t")).scalars().all() == ["without the queue"]
    engine.dispose()
