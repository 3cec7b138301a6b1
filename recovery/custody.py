"""Custody health: holders prove they still have their share by signing a challenge
with the custody key derived from it (recovery.shares). An account is `nominal` when it
survives the loss of any one proven share, `critical` when one more loss makes it
unrecoverable, `at_risk` when proven holders cannot recover it; the owner is notified
when the status drops."""
from __future__ import annotations

import base64
import datetime as dt
import os

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import services as audit
from cosigner.model import Account
from recovery import shares
from recovery.errors import NotHolder, ProofInvalid
from recovery.limits import CHALLENGE_BYTES, CUSTODY_PROOF_MAX_AGE
from recovery.model import RecoveryHolder, RecoverySetup

RANK = {"at_risk": 0, "critical": 1, "nominal": 2}


def is_proven(holder: RecoveryHolder, now: dt.datetime) -> bool:
    if holder.kind == "operator":
        return True
    return holder.proven_at is not None and now - holder.proven_at <= CUSTODY_PROOF_MAX_AGE


def compute_status(setup: RecoverySetup, holders: list[RecoveryHolder], now: dt.datetime) -> str:
    proven = {(h.group_index, h.member_index) for h in holders if is_proven(h, now)}
    return shares.custody_status(shares.parse_scheme(setup.scheme), proven)


def refresh_status(session: Session, setup: RecoverySetup, now: dt.datetime, *, notify_owner: bool = True) -> str:
    """Recompute and store the status; push `custody_at_risk`/`custody_critical` to the
    owner when it dropped. Returns the status."""
    from recovery.setup import holders as holders_of
    status = compute_status(setup, holders_of(session, setup.id), now)
    old = setup.custody_status
    setup.custody_status = status
    if notify_owner and RANK[status] < RANK.get(old, 2):
        from recovery.notices import push
        account = session.get(Account, setup.account_id)
        push(session, account.owner_device_id, f"custody_{status}", now)
        audit.record(session, actor="system", action="recovery.custody_dropped", subject=setup.account_id,
                     details={"from": old, "to": status}, now=now)
    return status


def _challenge(session: Session, ctx, holder: RecoveryHolder, now: dt.datetime) -> None:
    """A fresh challenge for one device holder: pushed, and a system message that
    replaces the holder's previous unanswered challenge message (they never pile up)."""
    from recovery.notices import system_message
    holder.challenge, holder.challenged_at = os.urandom(CHALLENGE_BYTES), now
    system_message(session, ctx, holder.device_id, {"type": "custody_challenge", "holder_id": holder.id,
                                                    "challenge": base64.b64encode(holder.challenge).decode()},
                   now, replaces={"type": "custody_challenge", "holder_id": holder.id})


def challenge_all(session: Session, ctx, now: dt.datetime) -> int:
    """Give every device holder a fresh challenge, push it and leave a system message.
    Then refresh every account's status (answers older than the max age stop counting).
    Returns the number of challenges issued. Safe to run twice (a new challenge simply
    replaces the old one, message included)."""
    count = 0
    for holder in session.scalars(select(RecoveryHolder).where(RecoveryHolder.kind == "device")):
        _challenge(session, ctx, holder, now)
        count += 1
    for setup in session.scalars(select(RecoverySetup)):
        refresh_status(session, setup, now)
    return count


def challenge_setup(session: Session, ctx, setup: RecoverySetup, *, actor: str, now: dt.datetime) -> int:
    """The owner asks for a custody check now (after a setup, instead of waiting for the
    daily job): every device holder of `setup` gets a fresh challenge. Audited. Returns
    how many were challenged."""
    holders = list(session.scalars(select(RecoveryHolder).where(RecoveryHolder.setup_id == setup.id,
                                                                RecoveryHolder.kind == "device")))
    for holder in holders:
        _challenge(session, ctx, holder, now)
    refresh_status(session, setup, now, notify_owner=False)
    audit.record(session, actor=actor, action="recovery.custody_check", subject=setup.account_id,
                 details={"challenged": len(holders)}, now=now)
    return len(holders)


def pending(session: Session, device_id: str) -> list[RecoveryHolder]:
    """The caller's holder slots with an open challenge."""
    return list(session.scalars(select(RecoveryHolder).where(RecoveryHolder.device_id == device_id,
                                                             RecoveryHolder.challenge.is_not(None))))


def answer(session: Session, holder_id: str, device_id: str, signature: bytes, now: dt.datetime) -> RecoveryHolder:
    """Accept a custody proof: the holder's custody key signed its current challenge.
    Raises NotHolder (not this device's slot, or no open challenge) / ProofInvalid."""
    holder = session.get(RecoveryHolder, holder_id) if isinstance(holder_id, str) and len(holder_id) <= 40 else None
    if holder is None or holder.device_id != device_id:
        raise NotHolder("no such holder slot for this device")
    if holder.challenge is None:
        raise NotHolder("there is no open challenge for this slot", code="no_open_challenge")
    if not shares.verify_custody(holder.custody_public_key, holder.id, holder.challenge, signature):
        raise ProofInvalid("the signature does not prove this share")
    holder.proven_at, holder.challenge = now, None
    setup = session.get(RecoverySetup, holder.setup_id)
    refresh_status(session, setup, now)
    audit.record(session, actor=device_id, action="recovery.custody_proven", subject=holder.id,
                 details={"account": setup.account_id}, now=now)
    return holder
