"""Tables for cosigner keys (sealed), accounts, issued addresses and spends."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, UTCDateTime

SPEND_STATES = ("built", "delayed", "awaiting_approval", "awaiting_verification", "broadcast", "confirmed", "deep",
                "cancelled",
                "replaced", "conflicted", "abandoned", "failed", "denied", "expired")
OPEN_STATES = ("built",)                                 # may still receive the phone's signature
HELD_STATES = ("delayed", "awaiting_approval", "awaiting_verification")  # signed by the phone, held by policy
CANCELLABLE_STATES = OPEN_STATES + HELD_STATES
# spends whose external amount counts against velocity limits (reserved or sent)
COUNTED_STATES = ("delayed", "awaiting_approval", "awaiting_verification", "broadcast", "confirmed", "deep")
DEEP_CONFIRMATIONS = 6


class CosignerKey(Base):
    """The server's BIP32 root for one account, sealed (cosigner.vault). Never returned."""
    __tablename__ = "cosigner_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    network: Mapped[str] = mapped_column(String(16), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(8), nullable=False)
    path: Mapped[str] = mapped_column(String(32), nullable=False)
    xpub: Mapped[str] = mapped_column(String(120), nullable=False)
    kek_id: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(80), nullable=False)
    network: Mapped[str] = mapped_column(String(16), nullable=False)
    template: Mapped[str] = mapped_column(String(24), nullable=False)
    decay_blocks: Mapped[int | None] = mapped_column(Integer)
    platform_key: Mapped[dict | None] = mapped_column(JSON)        # {"xpub", "origin"}
    recovery_key: Mapped[dict | None] = mapped_column(JSON)
    server_key_id: Mapped[str | None] = mapped_column(ForeignKey("cosigner_keys.id"))
    receive_descriptor: Mapped[str] = mapped_column(Text, nullable=False)
    change_descriptor: Mapped[str | None] = mapped_column(Text)
    birthday: Mapped[int | None] = mapped_column(BigInteger)        # Unix time for rescans
    next_receive_index: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    imported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    chain_cursor: Mapped[str | None] = mapped_column(String(64))      # listsinceblock position
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)

    @property
    def watch_only(self) -> bool:
        return self.template == "watch_only"


class IssuedAddress(Base):
    __tablename__ = "issued_addresses"
    __table_args__ = (UniqueConstraint("account_id", "branch", "index", name="uq_issued_addresses_slot"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    branch: Mapped[int] = mapped_column(Integer, nullable=False)
    index: Mapped[int] = mapped_column(Integer, nullable=False)
    address: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class Spend(Base):
    __tablename__ = "spends"
    __table_args__ = (Index("ix_spends_account_created", "account_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    state: Mapped[str] = mapped_column(String(24), nullable=False, index=True)
    psbt: Mapped[str] = mapped_column(Text, nullable=False)                 # unsigned, as built
    unsigned_txid: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    fee_sat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fee_rate: Mapped[float] = mapped_column(Float, nullable=False)
    vsize: Mapped[int] = mapped_column(Integer, nullable=False)
    external_sat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    inputs: Mapped[list] = mapped_column(JSON, nullable=False)
    outputs: Mapped[list] = mapped_column(JSON, nullable=False)
    decision: Mapped[dict | None] = mapped_column(JSON)
    submitted_digest: Mapped[str | None] = mapped_column(String(64))        # sha256 of the accepted signed PSBT
    txid: Mapped[str | None] = mapped_column(String(64), index=True)
    confirmations: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    replaces_id: Mapped[str | None] = mapped_column(String(40))
    replaced_by_id: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    broadcast_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    signed_psbt: Mapped[str | None] = mapped_column(Text)                    # held by a delay/approval
    release_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    approval_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)  # when the policy let it count
    # until when its input coins are reserved (chain_coins.reserved_until of each input);
    # a built spend past it expires (cosigner.reservations)
    reserved_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)


class AccountPolicy(Base):
    """One version of an account's rules (the highest version is in force)."""
    __tablename__ = "account_policies"
    __table_args__ = (UniqueConstraint("account_id", "version", name="uq_account_policies_version"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    rules: Mapped[dict] = mapped_column(JSON, nullable=False)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class PolicyChange(Base):
    """A loosening change waiting out its delay; cancellable by any of the owner's devices."""
    __tablename__ = "policy_changes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    rules: Mapped[dict] = mapped_column(JSON, nullable=False)               # the rules asked for
    base_rules: Mapped[dict | None] = mapped_column(JSON)                   # the rules in force when asked
    state: Mapped[str] = mapped_column(String(16), nullable=False)          # pending | applied | cancelled
    effective_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class SpendApproval(Base):
    __tablename__ = "spend_approvals"
    __table_args__ = (UniqueConstraint("spend_id", "approver_kind", "approver_id", name="uq_spend_approvals_once"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    spend_id: Mapped[str] = mapped_column(ForeignKey("spends.id"), nullable=False, index=True)
    approver_kind: Mapped[str] = mapped_column(String(8), nullable=False)     # device | staff
    approver_id: Mapped[str] = mapped_column(String(64), nullable=False)
    decision: Mapped[str] = mapped_column(String(8), nullable=False)          # approve | deny
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
