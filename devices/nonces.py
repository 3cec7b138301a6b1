"""Single-use request nonces (replay protection for signed requests).

Two stores behind one interface: Redis (`SET NX EX`, shared by every API process) and
the database (`used_nonces` table, for the embedded mode; a beat job purges expired rows).
`use(device_id, nonce, ttl)` returns True the first time and False for a replay.
"""
from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.base import Base, UTCDateTime


class UsedNonce(Base):
    __tablename__ = "used_nonces"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)


def nonce_key(device_id: str, nonce: str) -> str:
    """A fixed-length key: SHA-256 hex of device id and nonce (nonces can be long)."""
    return hashlib.sha256(f"{device_id}\x00{nonce}".encode()).hexdigest()


class NonceStore:
    """Interface: remember a nonce for `ttl` seconds; refuse it while remembered."""

    def use(self, device_id: str, nonce: str, ttl: int, now: dt.datetime) -> bool:
        raise NotImplementedError

    def ping(self) -> None:
        """Raise if the store is unreachable."""


class RedisNonceStore(NonceStore):
    def __init__(self, client, prefix: str = "custos:nonce:"):
        self._redis = client
        self._prefix = prefix

    def use(self, device_id, nonce, ttl, now):
        return bool(self._redis.set(self._prefix + nonce_key(device_id, nonce), b"1", nx=True, ex=ttl))

    def ping(self):
        self._redis.ping()


class SqlNonceStore(NonceStore):
    """Uses its own short transaction so a nonce stays used even if the request fails."""

    def __init__(self, session_factory):
        self._sessions = session_factory

    def use(self, device_id, nonce, ttl, now):
        key = nonce_key(device_id, nonce)
        with self._sessions() as session:
            try:
                with session.begin():
                    row = session.get(UsedNonce, key)
                    if row is not None:
                        if row.expires_at > now:
                            return False
                        row.expires_at = now + dt.timedelta(seconds=ttl)
                    else:
                        session.add(UsedNonce(key=key, expires_at=now + dt.timedelta(seconds=ttl)))
            except IntegrityError:  # a concurrent request inserted it first
                return False
        return True

    def ping(self):
        with self._sessions() as session:
            session.execute(select(1))


def purge_expired(session: Session, now: dt.datetime) -> int:
    """Delete nonces whose window has passed; return how many. Idempotent."""
    return session.execute(delete(UsedNonce).where(UsedNonce.expires_at <= now)).rowcount or 0
