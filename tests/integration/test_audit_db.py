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
