"""Recovery tables. Secrets at rest are sealed with cosigner.vault (envelope encryption,
the row id as associated data): the operator's share, the OTP email address, outbox
mail. Contacts' shares exist here only as NaCl sealed boxes the server cannot open."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (JSON, BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, UTCDateTime


class RecoverySetup(Base):
    """An account's current SLIP-39 scheme, its operator share (sealed) and the OTP email
    (sealed; found by `email_hash`, an HMAC). Re-setup inserts a new row and deletes the
    old one in the same transaction."""
    __tablename__ = "recovery_setups"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    scheme: Mapped[dict] = mapped_column(JSON, nullable=False)          # public SLIP-39 parameters
    email_hash: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    email_kek_id: Mapped[str] = mapped_column(String(32), nullable=False)
    email_wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    email_ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    share_kek_id: Mapped[str] = mapped_column(String(32), nullable=False)
    share_wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    share_ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    custody_status: Mapped[str] = mapped_column(String(16), nullable=False, default="at_risk")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class RecoveryHolder(Base):
    """Who holds which share: the operator, or a device (a contact, or the owner's own
    phone standing for its cloud store). `custody_public_key` is the Ed25519 key derived
    from the share (HKDF) that answers custody challenges."""
    __tablename__ = "recovery_holders"
    __table_args__ = (UniqueConstraint("setup_id", "group_index", "member_index", name="uq_recovery_holders_slot"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    setup_id: Mapped[str] = mapped_column(ForeignKey("recovery_setups.id", ondelete="CASCADE"), nullable=False,
                                          index=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)                 # operator | device
    device_id: Mapped[str | None] = mapped_column(String(40), index=True)
    label: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="holder",
                                      server_default="holder")                   # holder | beneficiary (issue #18)
    group_index: Mapped[int] = mapped_column(Integer, nullable=False)
    member_index: Mapped[int] = mapped_column(Integer, nullable=False)
    custody_public_key: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    challenge: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    challenged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    proven_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class RecoveryCase(Base):
    """One recovery attempt. `account_id` is NULL for a decoy case (unknown email): it
    behaves like a real one towards the requester and can never verify."""
    __tablename__ = "recovery_cases"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    setup_id: Mapped[str | None] = mapped_column(String(40))
    requester_device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), nullable=False, index=True)
    sealing_key: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    email_hash: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    verified_by: Mapped[str | None] = mapped_column(String(64))            # "otp" or "staff:<id>"
    otp_hash: Mapped[str | None] = mapped_column(String(200))
    otp_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    otp_sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    otp_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    delay_ends_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    next_reminder_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    challenge: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    released_share: Mapped[bytes | None] = mapped_column(LargeBinary)    # sealed box to sealing_key
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    early_release: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    staff_approvals: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    closed_reason: Mapped[str | None] = mapped_column(String(64))
    history: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class RecoveryResponse(Base):
    """A holder's answer to a case: a sealed share (opaque bytes) or a decline."""
    __tablename__ = "recovery_responses"
    __table_args__ = (UniqueConstraint("case_id", "holder_id", name="uq_recovery_responses_holder"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("recovery_cases.id", ondelete="CASCADE"), nullable=False,
                                         index=True)
    holder_id: Mapped[str] = mapped_column(String(40), nullable=False)
    device_id: Mapped[str] = mapped_column(String(40), nullable=False)
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    declined: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class RecoveryAccountState(Base):
    """Recovery-specific state of an account (kept out of the accounts table): `mode` is
    "sweep" after a completed recovery until the sweep is broadcast."""
    __tablename__ = "recovery_account_state"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16), nullable=False, default="normal")
    case_id: Mapped[str | None] = mapped_column(String(40))
    new_owner_device_id: Mapped[str | None] = mapped_column(String(40))
    sweep_spend_id: Mapped[str | None] = mapped_column(String(40))
    sweep_txid: Mapped[str | None] = mapped_column(String(64))
    destination_account_id: Mapped[str | None] = mapped_column(String(40))
    last_backup_reminder_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class Backup(Base):
    """A client-encrypted backup blob (the server never has its key)."""
    __tablename__ = "recovery_backups"
    __table_args__ = (UniqueConstraint("account_id", "version", name="uq_recovery_backups_version"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    blob: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    device_id: Mapped[str] = mapped_column(String(40), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class MailOutbox(Base):
    """Outgoing mail, sealed (recipient and body). Embedded mode: the mail stays here
    (state `outbox`); with SMTP a job sends it (`pending` → `sent`)."""
    __tablename__ = "recovery_mail_outbox"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    to_hash: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    kek_id: Mapped[str] = mapped_column(String(32), nullable=False)
    wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class RecoverySetupChange(Base):
    """A pending replacement of an account's recovery setup (privileged action
    `recovery.replace_setup`: it waits POLICY_LOOSEN_DELAY and, when the account has a
    verification channel, an out-of-band confirmation). The requested setup — operator
    share and e-mail included — is sealed whole (cosigner.vault, `rsch:<id>` as associated
    data); `summary` holds only what the owner is shown (counts, thresholds, whether the
    e-mail changes). States: pending → applied | cancelled | superseded | void."""
    __tablename__ = "recovery_setup_changes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    summary: Mapped[dict] = mapped_column(JSON, nullable=False)
    kek_id: Mapped[str] = mapped_column(String(32), nullable=False)
    wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    effective_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    closed_reason: Mapped[str | None] = mapped_column(String(64))
