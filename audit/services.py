"""Append to and verify the audit log. Both take an open SQLAlchemy session; `record`
joins the caller's transaction so the audit row commits or rolls back with the change
it describes."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from audit.chain import GENESIS_HASH, ChainReport, Entry, check_details, entry_hash, verify_entries
from audit.model import AuditEvent

# Serializes appenders on PostgreSQL for the rest of their transaction. The unique
# prev_hash is the backstop: a fork cannot commit.
_PG_LOCK_ID = 0x0A0D17
# built once, table-level (every audited change appends a row: no ORM unit of work for it)
_EVENTS = AuditEvent.__table__
_TAIL = select(_EVENTS.c.seq, _EVENTS.c.hash).order_by(_EVENTS.c.seq.desc()).limit(1)
_APPEND = insert(_EVENTS)


def _lock_tail(session: Session) -> None:
    """Hold the appenders' lock until the transaction ends, before the tail is read.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: the database write lock.
    SQLite only takes it at a transaction's first write, and the driver runs the SELECT
    of the tail outside any transaction, so two appenders would both read seq N and one
    would fail on `UNIQUE(seq)`; a write that changes nothing takes the lock first (a
    second appender waits for the busy timeout, then reads the new tail)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_ID})
    elif dialect == "sqlite" and not _holds_writer_queue(session):
        session.execute(text("UPDATE audit_events SET seq = seq WHERE seq = -1"))


def _holds_writer_queue(session: Session) -> bool:
    """True when this transaction's SQLite connection holds Custos's writers' lock
    (store.session.WriterQueueConnection, taken at the transaction's first write): no
    other writer of the database runs until it commits, so the tail read next is the
    tail the append follows (one statement fewer for an audit row written late in a
    write transaction, as a cosign's is)."""
    raw = session.connection().connection.dbapi_connection
    return getattr(raw, "holds_writer_lock", False)


def record(session: Session, *, actor: str, action: str, subject: str,
           details: dict | None = None, now: dt.datetime) -> int:
    """Append one event in the caller's transaction; returns its seq. Raises
    AuditDetailsError if details name a secret. Not idempotent: each call appends a row."""
    details = check_details(dict(details or {}))
    _lock_tail(session)
    conn = session.connection()
    last = conn.execute(_TAIL).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
    conn.execute(_APPEND, {"seq": seq, "at": now, "actor": actor, "action": action, "subject": subject,
                           "details": details, "prev_hash": prev,
                           "hash": entry_hash(seq, now, actor, action, subject, details, prev)})
    return seq


def verify(session: Session, batch: int = 1000) -> ChainReport:
    """Walk the whole log in seq order; report the first broken link. Read-only."""
    def rows():
        after = 0
        while True:
            chunk = session.execute(
                select(AuditEvent).where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(batch)
            ).scalars().all()
            if not chunk:
                return
            for r in chunk:
                yield Entry(r.seq, r.at, r.actor, r.action, r.subject, r.details, r.prev_hash, r.hash)
            after = chunk[-1].seq
    return verify_entries(rows())


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent)) or 0
