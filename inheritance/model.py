"""Inheritance tables. No secret in plaintext: the operator share is only ever stored
here as a NaCl sealed box to the claim's sealing key (`released_share`), which the
server cannot open; beneficiaries' own shares never reach the server."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, UTCDateTime


class InheritancePlan(Base):
    """An account's plan in force: `beneficiaries` is a list of {device_id, label,
    holder_id, named_at}. Pending loosenings live in InheritancePlanChange."""
    __tablename__ = "inheritance_plans"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    waiting_days: Mapped[int] = mapped_column(Integer, nullable=False)
    beneficiaries: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class InheritancePlanChange(Base):
    """A pending loosening: `action` is `inheritance.add_beneficiary` (payload
    {device_id, label}) or `inheritance.shorten_wait` (payload {waiting_days}).
    pending → applied | cancelled | superseded | void (no longer valid when due)."""
    __tablename__ = "inheritance_plan_changes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    action: Mapped[str] = mapped_column(String(48), nullable=False)
    payload: Mapped[dict] = mapped_column(JSON, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    effective_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    closed_reason: Mapped[str | None] = mapped_column(String(64))


class InheritanceClaim(Base):
    """One claim by a beneficiary (inheritance.machine has the states). `wait_ends_at`
    is fixed when the claim starts (a later lengthening of the plan extends it; a
    shortening does not shorten it)."""
    __tablename__ = "inheritance_claims"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    setup_id: Mapped[str] = mapped_column(String(40), nullable=False)
    holder_id: Mapped[str] = mapped_column(String(40), nullable=False)
    beneficiary_device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), nullable=False, index=True)
    owner_device_id: Mapped[str] = mapped_column(String(40), nullable=False)     # the owner when it started
    sealing_key: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    waiting_days: Mapped[int] = mapped_column(Integer, nullable=False)
    wait_ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    next_reminder_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    reminders_sent: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    challenge: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    released_share: Mapped[bytes | None] = mapped_column(LargeBinary)            # sealed box to sealing_key
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())          # set at release
    proven_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())           # recovery key proven
    destination_account_id: Mapped[str | None] = mapped_column(String(40))
    sweep_spend_id: Mapped[str | None] = mapped_column(String(40))
    sweep_txid: Mapped[str | None] = mapped_column(String(64))
    closed_reason: Mapped[str | None] = mapped_column(String(64))
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    history: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
