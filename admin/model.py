"""Tables for staff members, their console sessions and their API tokens.

No secret is stored in the clear: passwords as argon2id hashes, TOTP secrets sealed with
the master key (cosigner.vault envelope encryption), session cookies and API tokens as
SHA-256 digests (they carry 256 bits of entropy, so a plain digest cannot be reversed).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, UTCDateTime


class StaffMember(Base):
    __tablename__ = "staff_members"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)          # the username; never reused
    display_name: Mapped[str | None] = mapped_column(String(80))
    password_hash: Mapped[str] = mapped_column(String(200), nullable=False)  # argon2id
    roles: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    totp_kek_id: Mapped[str | None] = mapped_column(String(32))
    totp_wrapped_dek: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_enrolled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    totp_generation: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_totp_step: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)  # replay guard
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    def locked(self, now: dt.datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


class StaffSession(Base):
    """A console login. `id` is the SHA-256 of the cookie value. `stage`: `password`
    (TOTP still to give), `enroll` (TOTP to set up) or `full`."""
    __tablename__ = "staff_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff_members.id"), nullable=False, index=True)
    stage: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)


class StaffToken(Base):
    """A scoped API token (`Authorization: Bearer cst_…`). Only its SHA-256 is stored."""
    __tablename__ = "staff_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff_members.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(80), nullable=False)
    digest: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    scopes: Mapped[list] = mapped_column(JSON, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
