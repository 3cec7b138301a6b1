"""Idempotency records: (device, Idempotency-Key) → the response first given.

A create retried with the same key and the same body gets the stored response; the same
key with a different body is refused. Records expire after RETENTION (a beat job purges)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Integer, String, delete
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.base import Base, UTCDateTime

RETENTION = dt.timedelta(hours=24)
MAX_KEY = 64


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_records"

    device_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[int] = mapped_column(Integer, nullable=False)
    body: Mapped[dict] = mapped_column(JSON, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)


def find(session: Session, device_id: str, key: str) -> IdempotencyRecord | None:
    return session.get(IdempotencyRecord, (device_id, key))


def purge(session: Session, now: dt.datetime) -> int:
    """Delete records older than RETENTION. Idempotent."""
    return session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now - RETENTION)).rowcount or 0
