"""Single-use request nonces (replay protection for signed requests).

Two stores behind one interface, each one statement and one round trip per request:
Redis (`SET key 1 NX EX ttl`, shared by every API process; `create_app` picks it whenever
REDIS_URL is set) and the database (`used_nonces`, for the embedded mode: one
`INSERT … ON CONFLICT DO UPDATE … WHERE expired` in its own short transaction, atomic on
SQLite and PostgreSQL; a beat job purges expired rows).
`use(device_id, nonce, ttl, now)` returns True the first time and False for a replay.
"""
from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import String, bindparam, delete, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.base import Base, UTCDateTime
from store.session import unsynced


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


# One statement: insert the nonce, or take over a row whose window has passed; a row
# still inside its window is left alone and the statement changes nothing (rowcount 0).
# The same text runs on SQLite (>= 3.24) and PostgreSQL; the typed parameters store
# timestamps exactly as the ORM column does.
_USE = text(
    "INSERT INTO used_nonces (key, expires_at) VALUES (:key, :expires_at) "
    "ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at "
    "WHERE used_nonces.expires_at <= :now"
).bindparams(bindparam("expires_at", type_=UTCDateTime()), bindparam("now", type_=UTCDateTime()))


class SqlNonceStore(NonceStore):
    """Uses its own short transaction (not the request's) so a nonce stays used even if
    the request fails. `bind` is an Engine, or a sessionmaker bound to one.

    `_USE` is compiled for the engine's dialect once and run as driver SQL with the
    parameters converted as the compiled statement would (the UTCDateTime column's bind
    processing for this dialect): the same statement, bytes and round trip, without
    SQLAlchemy's per-execution compile-cache lookup and parameter assembly (about a third
    of this call's CPU). It still runs through Connection.exec_driver_sql, so engine
    events (statement counters) see it.

    On SQLite the nonce's commit does not fsync (`store.session.unsynced`): the request's
    own write, right after, syncs the WAL with the nonce in it, so the nonce of a request
    that changed anything is as durable as that change; only a read's nonce can be lost,
    by a power loss before the next write (the Redis store keeps nothing on disk at all).
    It had been one of the two fsyncs of every signed write and the only one of a read,
    each under SQLite's single writer lock (issue #19)."""

    def __init__(self, bind):
        self._engine: Engine = bind if isinstance(bind, Engine) else bind.kw["bind"]
        dialect = self._engine.dialect
        compiled = _USE.compile(dialect=dialect)
        self._sql = compiled.string
        self._positional = compiled.positiontup      # names in order (qmark, numeric), else None
        self._stamp = UTCDateTime().dialect_impl(dialect).bind_processor(dialect) or (lambda v: v)

    def use(self, device_id, nonce, ttl, now):
        stamp = self._stamp
        params = {"key": nonce_key(device_id, nonce), "expires_at": stamp(now + dt.timedelta(seconds=ttl)),
                  "now": stamp(now)}
        if self._positional is not None:
            params = tuple(params[name] for name in self._positional)
        with self._engine.connect() as conn, unsynced(conn):
            changed = conn.exec_driver_sql(self._sql, params).rowcount
            conn.commit()
        return changed == 1

    def ping(self):
        with self._engine.connect() as conn:
            conn.execute(select(1))


def purge_expired(session: Session, now: dt.datetime) -> int:
    """Delete nonces whose window has passed; return how many. Idempotent."""
    return session.execute(delete(UsedNonce).where(UsedNonce.expires_at <= now)).rowcount or 0
