"""Messaging tables: prekey directory, message queues, contacts and invites, and the
push notification outbox. The server stores public keys and opaque ciphertext only."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (BigInteger, ForeignKey, Index, Integer, LargeBinary, SmallInteger, String,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, UTCDateTime

_BIGINT = BigInteger().with_variant(Integer, "sqlite")
_DEVICE_FK = dict(ondelete="CASCADE")


class KeySet(Base):
    """A device's identity key and last-resort prekey (one row per device)."""
    __tablename__ = "messaging_key_sets"

    device_id: Mapped[str] = mapped_column(String(40), ForeignKey("devices.id", **_DEVICE_FK), primary_key=True)
    registration_id: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    identity_key: Mapped[bytes] = mapped_column(LargeBinary(33), nullable=False)
    last_resort_key_id: Mapped[int] = mapped_column(Integer, nullable=False)
    last_resort_key: Mapped[bytes] = mapped_column(LargeBinary(33), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class SignedPreKey(Base):
    """Signed prekeys; the newest (superseded_at NULL) is served, the previous one is kept
    for a grace period and then purged."""
    __tablename__ = "messaging_signed_prekeys"
    __table_args__ = (UniqueConstraint("device_id", "key_id"),)

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(40), ForeignKey("devices.id", **_DEVICE_FK), nullable=False)
    key_id: Mapped[int] = mapped_column(Integer, nullable=False)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(33), nullable=False)
    signature: Mapped[bytes] = mapped_column(LargeBinary(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    superseded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)


class OneTimePreKey(Base):
    """One-time prekeys; each is handed out once (deleted when fetched)."""
    __tablename__ = "messaging_prekeys"
    __table_args__ = (UniqueConstraint("device_id", "key_id"),)

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(40), ForeignKey("devices.id", **_DEVICE_FK), nullable=False)
    key_id: Mapped[int] = mapped_column(Integer, nullable=False)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(33), nullable=False)


class Message(Base):
    """One queued envelope. `seq` orders a recipient's queue (oldest first)."""
    __tablename__ = "messaging_messages"
    __table_args__ = (Index("ix_messaging_messages_recipient_seq", "recipient_id", "seq"),)

    seq: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=True)
    guid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    recipient_id: Mapped[str] = mapped_column(String(40), ForeignKey("devices.id", **_DEVICE_FK), nullable=False)
    sender_id: Mapped[str] = mapped_column(String(40), nullable=False)
    type: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    server_timestamp: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)


class Invite(Base):
    """A contact invite. Only the SHA-256 of the code is stored."""
    __tablename__ = "messaging_invites"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    inviter_id: Mapped[str] = mapped_column(String(40), ForeignKey("devices.id", **_DEVICE_FK), nullable=False,
                                            index=True)
    display_name: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    accepted_by: Mapped[str | None] = mapped_column(String(40))


class Contact(Base):
    """A two-way contact relationship; (device_a, device_b) in sorted order, each with the
    display name that side chose for itself."""
    __tablename__ = "messaging_contacts"
    __table_args__ = (UniqueConstraint("device_a", "device_b"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    device_a: Mapped[str] = mapped_column(String(40), ForeignKey("devices.id", **_DEVICE_FK), nullable=False)
    name_a: Mapped[str | None] = mapped_column(String(64))
    device_b: Mapped[str] = mapped_column(String(40), ForeignKey("devices.id", **_DEVICE_FK), nullable=False,
                                          index=True)
    name_b: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)

    def other(self, device_id: str) -> tuple[str, str | None]:
        """(the other side's device id, the name it chose)."""
        return (self.device_b, self.name_b) if device_id == self.device_a else (self.device_a, self.name_a)


class Notification(Base):
    """A content-free push, durable: written in the caller's transaction, delivered
    at least once by a task. `id` (a UUID) is the provider's idempotency key."""
    __tablename__ = "messaging_notifications"
    __table_args__ = (Index("ix_messaging_notifications_state_next", "state", "next_attempt_at"),
                      Index("ix_messaging_notifications_device_kind_created", "device_id", "kind", "created_at"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)   # pending|sending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    channel: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(String(64))
