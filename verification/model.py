"""Tables of out-of-band verification: the owner's channels and the verification
requests. Secrets are never stored in plaintext: an e-mail address and a TOTP secret
are sealed (cosigner.vault, the row id as associated data), the address is found by
its HMAC (`email_hash`), codes are argon2id-hashed and link tokens SHA-256-hashed."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, UTCDateTime

# pending: the e-mail code / first TOTP code is not given yet; waiting: confirmed, but it
# replaces an active channel of its kind, so it waits out the delay and the old channel's
# confirmation; active; removing: active until its removal (delay + confirmation) applies;
# retired: replaced, removed or abandoned.
CHANNEL_STATES = ("pending", "waiting", "active", "removing", "retired")
USABLE_STATES = ("active", "removing")
REQUEST_STATES = ("pending", "confirmed", "cancelled", "expired", "withdrawn")


class VerificationChannel(Base):
    __tablename__ = "verification_channels"
    __table_args__ = (Index("ix_verification_channels_account_kind", "account_id", "kind", "state"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)                  # email | totp
    state: Mapped[str] = mapped_column(String(12), nullable=False)
    email_hash: Mapped[str | None] = mapped_column(String(64), index=True)        # HMAC of the address
    kek_id: Mapped[str] = mapped_column(String(32), nullable=False)               # sealed address / TOTP secret
    wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    sealed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    code_hash: Mapped[str | None] = mapped_column(String(200))                    # argon2id of the e-mailed code
    code_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    code_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_totp_step: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)  # replay guard
    effective_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())      # waiting / removing: when due
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class VerificationRequest(Base):
    """One out-of-band confirmation asked for one subject (a spend, a policy change, a
    channel change, later inheritance plan changes). Tokens are stored as SHA-256."""
    __tablename__ = "verification_requests"
    __table_args__ = (Index("ix_verification_requests_subject", "subject_kind", "subject_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    action: Mapped[str] = mapped_column(String(48), nullable=False)               # privileged.PRIVILEGED name
    subject_kind: Mapped[str] = mapped_column(String(32), nullable=False)
    subject_id: Mapped[str] = mapped_column(String(64), nullable=False)
    channel: Mapped[str] = mapped_column(String(8), nullable=False)               # email | totp | either
    state: Mapped[str] = mapped_column(String(12), nullable=False, index=True)
    confirmed_via: Mapped[str | None] = mapped_column(String(8))                  # email | totp
    summary: Mapped[dict] = mapped_column(JSON, nullable=False)                   # what the page shows
    view_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    confirm_digest: Mapped[str | None] = mapped_column(String(64))
    cancel_digest: Mapped[str | None] = mapped_column(String(64))
    totp_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    closed_reason: Mapped[str | None] = mapped_column(String(32))
