"""Audit log on the real database: appends chain, tampering by SQL is found."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import text

from audit import services as audit
from store.session import session_scope

T0 = dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)


def test_chain_appends_and_detects_sql_tampering(clean_db):
    with session_scope(clean_db) as s:
        for i in range(5):
            audit.record(s, actor="staff_1", action="account.frozen", subject=f"acct_{i}",
                         details={"reason": "customer call"}, now=T0 + dt.timedelta(minutes=i))
    with session_scope(clean_db) as s:
        report = audit.verify(s)
        assert report.ok and report.checked == 5
        s.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"))
    with session_scope(clean_db) as s:
        report = audit.verify(s)
        assert not report.ok and report.first_broken_seq == 3


def test_deleting_the_last_row_cannot_hide_an_earlier_gap(clean_db):
    with session_scope(clean_db) as s:
        for i in range(3):
            audit.record(s, actor="a", action="x", subject="s", details={}, now=T0)
    with session_scope(clean_db) as s:
        s.execute(text("DELETE FROM audit_events WHERE seq = 2"))
    with session_scope(clean_db) as s:
        report = audit.verify(s)
        assert not report.ok and report.first_broken_seq == 2


def _concurrent_appends(url: str, clients: int = 4, each: int = 60) -> list[str]:
    """`clients` threads, each appending `each` events in its own transactions, the way
    API processes do. Returns the errors seen."""
    import threading
    errors: list[str] = []
    start = threading.Barrier(clients)

    def client(n: int) -> None:
        start.wait()
        for i in range(each):
            try:
                with session_scope(url) as s:
                    audit.record(s, actor=f"client_{n}", action="x", subject=f"s{i}", details={}, now=T0)
            except Exception as exc:  # noqa: BLE001 - the test reports every failure
                errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}")
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_concurrent_appends_on_sqlite_never_collide(tmp_path):
    """Issue #14: 4 clients × 60 appends on SQLite gave `UNIQUE constraint failed:
    audit_events.seq` (the lock was taken only on PostgreSQL)."""
    from tests.dbutil import upgrade
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    assert _concurrent_appends(url) == []
    with session_scope(url) as s:
        report = audit.verify(s)
        assert report.ok and report.checked == 240


def test_concurrent_appends_on_the_suite_database(clean_db):
    assert _concurrent_appends(clean_db, clients=4, each=25) == []
    with session_scope(clean_db) as s:
        report = audit.verify(s)
        assert report.ok and report.checked == 100
