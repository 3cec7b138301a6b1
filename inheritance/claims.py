"""Claims, beneficiary and owner side: start (everyone told at once), cancel by the
owner (optionally freezing the account) or by staff, and the closing of claims when the
plan or the setup changes under them. Timed steps (reminders, release, expiry) are in
inheritance.timeline. Every service takes an open session (the caller owns the
transaction), the context and `now`; every transition is audited in the same
transaction.
"""
from __future__ import annotations

import base64
import datetime as dt
import os
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import services as audit
from cosigner.model import Account
from inheritance import machine, plans
from inheritance.beneficiaries import check as check_beneficiary
from inheritance.context import InheritanceContext
from inheritance.errors import ClaimBlocked, ClaimClosed, ClaimConflict, ClaimNotFound, InvalidPlan, NotBeneficiary
from inheritance.limits import CHALLENGE_BYTES, CLAIM_BLOCK, SEALING_KEY_BYTES
from inheritance.model import InheritanceClaim
from inheritance.schedule import next_reminder
from recovery import setup as setups
from recovery.errors import NotConfigured
from recovery.secrets_box import valid_x25519


def move(session: Session, claim: InheritanceClaim, to: str, now: dt.datetime, *, by: str = "system",
         reason: str | None = None, **details) -> None:
    """One audited transition (inheritance.<state>, subject the claim)."""
    machine.transition(claim, to, now, by=by, reason=reason)
    audit.record(session, actor=by, action=f"inheritance.{to}", subject=claim.id,
                 details={"account": claim.account_id, "beneficiary": claim.beneficiary_device_id,
                          **({"reason": reason} if reason else {}), **details}, now=now)


def get(session: Session, claim_id, *, lock: bool = False) -> InheritanceClaim:
    if not isinstance(claim_id, str) or not 0 < len(claim_id) <= 40:
        raise ClaimNotFound("no such inheritance claim")
    stmt = select(InheritanceClaim).where(InheritanceClaim.id == claim_id)
    claim = session.scalar(stmt.with_for_update() if lock else stmt)
    if claim is None:
        raise ClaimNotFound("no such inheritance claim")
    return claim


def get_for_beneficiary(session: Session, claim_id, device_id: str, *, lock: bool = False) -> InheritanceClaim:
    claim = get(session, claim_id, lock=lock)
    if claim.beneficiary_device_id != device_id:
        raise ClaimNotFound("no such inheritance claim")
    return claim


def open_claims(session: Session, account_id: str) -> list[InheritanceClaim]:
    return list(session.scalars(select(InheritanceClaim).where(
        InheritanceClaim.account_id == account_id, InheritanceClaim.state.in_(machine.OPEN_STATES))
        .order_by(InheritanceClaim.created_at)))


def blocked_until(session: Session, account_id: str, device_id: str, now: dt.datetime) -> dt.datetime | None:
    """End of the block a cancelled claim put on this beneficiary for this account
    (CLAIM_BLOCK after the newest cancellation by the owner or staff), or None."""
    last = session.scalar(select(InheritanceClaim.closed_at).where(
        InheritanceClaim.account_id == account_id, InheritanceClaim.beneficiary_device_id == device_id,
        InheritanceClaim.state == "cancelled",
        InheritanceClaim.closed_reason.in_(("cancelled_by_owner", "cancelled_by_staff")))
        .order_by(InheritanceClaim.closed_at.desc()).limit(1))
    return last + CLAIM_BLOCK if last is not None and now < last + CLAIM_BLOCK else None


def start(session: Session, ctx: InheritanceContext, *, device_id: str, account_id, sealing_key: bytes,
          now: dt.datetime) -> InheritanceClaim:
    """A beneficiary starts a claim. Raises InvalidPlan (`invalid_sealing_key`),
    NotBeneficiary (not a beneficiary in force, or no longer eligible now — no longer a
    contact or a beneficiary holder of the current setup; the same for an unknown account),
    ClaimBlocked (a claim was cancelled less than 30 days ago: `details.blocked_until`),
    ClaimConflict (`claim_open`: this beneficiary already has an open claim). Then the
    owner, the other holders and the recovery e-mail are told at once and the claim
    waits the plan's waiting_days."""
    if not isinstance(sealing_key, bytes) or len(sealing_key) != SEALING_KEY_BYTES or not valid_x25519(sealing_key):
        raise InvalidPlan("sealing_key must be a base64 X25519 public key (32 bytes)", code="invalid_sealing_key")
    account = session.get(Account, account_id) if isinstance(account_id, str) and len(account_id) <= 40 else None
    plan = plans.get(session, account.id) if account is not None else None
    entry = plans.named(plan, device_id)
    if entry is None:
        raise NotBeneficiary("you are not a beneficiary of this account")
    session.get(Account, account.id, with_for_update=True)
    until = blocked_until(session, account.id, device_id, now)
    if until is not None:
        raise ClaimBlocked("a claim of yours on this account was declined recently; try again later",
                           details={"blocked_until": until.isoformat()})
    mine = [c for c in open_claims(session, account.id) if c.beneficiary_device_id == device_id]
    if mine:
        raise ClaimConflict("you already have an open claim on this account", code="claim_open",
                            details={"claim_id": mine[0].id})
    try:
        setup = setups.current(session, account.id)
        holder_id = check_beneficiary(session, account, setup, device_id).id     # still eligible now
    except (NotConfigured, InvalidPlan):
        raise NotBeneficiary("you are not a beneficiary of this account") from None
    ends = now + dt.timedelta(days=plan.waiting_days)
    claim = InheritanceClaim(id="icl_" + secrets.token_hex(12), account_id=account.id, setup_id=setup.id,
                             holder_id=holder_id, beneficiary_device_id=device_id,
                             owner_device_id=account.owner_device_id, sealing_key=sealing_key, state="requested",
                             waiting_days=plan.waiting_days, wait_ends_at=ends,
                             next_reminder_at=next_reminder(now, ends, ctx.reminder_every, now), reminders_sent=0,
                             challenge=os.urandom(CHALLENGE_BYTES), history=[], created_at=now, updated_at=now)
    session.add(claim)
    session.flush()
    audit.record(session, actor=device_id, action="inheritance.requested", subject=claim.id,
                 details={"account": account.id, "beneficiary": device_id, "waiting_days": plan.waiting_days},
                 now=now)
    from inheritance.notices import tell_everyone
    tell_everyone(session, ctx, claim, push_kind="inheritance_claim_started",
                  note={"type": "inheritance_claim_started", "claim_id": claim.id, "account_id": account.id,
                        "beneficiary_device_id": device_id, "wait_ends_at": ends.isoformat()},
                  subject="A Custos inheritance claim has started",
                  body=f"A beneficiary you named started an inheritance claim on your wallet (claim {claim.id}). "
                       f"Unless you cancel it from your phone, the operator's share is released to them after "
                       f"{ends:%Y-%m-%d %H:%M} UTC.", now=now)
    move(session, claim, "waiting", now, by="system")
    from inheritance.timeline import schedule_next
    schedule_next(session, claim)
    return claim


def cancel(session: Session, ctx: InheritanceContext, claim_id, device_id: str, *, freeze: bool,
           now: dt.datetime) -> InheritanceClaim:
    """The account's owner declines the claim: cancelled (`cancelled_by_owner`), the
    beneficiary told it was declined, a sweep built and not yet broadcast is cancelled;
    with `freeze` the account is frozen through the policy engine's owner freeze.
    Raises ClaimNotFound for anyone but the owner, ClaimClosed for a completed or expired
    claim. Idempotent for an already cancelled claim (a freeze asked again still applies)."""
    claim = get(session, claim_id, lock=True)
    account = session.get(Account, claim.account_id)
    if account is None or account.owner_device_id != device_id:
        raise ClaimNotFound("no such inheritance claim")
    if claim.state != "cancelled":
        _decline(session, ctx, claim, by=device_id, reason="cancelled_by_owner", now=now, freeze=freeze)
    if freeze:
        from recovery.cases import request_freeze
        request_freeze(session, account, device_id, now)
    return claim


def staff_cancel(session: Session, ctx: InheritanceContext, claim_id, staff_id: str,
                 now: dt.datetime) -> InheritanceClaim:
    """Support cancels a claim (audited as `staff:<id>`; the beneficiary told). Staff can
    cancel but has no way to shorten a wait. Idempotent for a cancelled claim."""
    claim = get(session, claim_id, lock=True)
    if claim.state != "cancelled":
        _decline(session, ctx, claim, by=f"staff:{staff_id}", reason="cancelled_by_staff", now=now)
    return claim


def _decline(session, ctx, claim, *, by: str, reason: str, now, freeze: bool = False) -> None:
    if claim.state not in machine.OPEN_STATES:
        raise ClaimClosed(f"this inheritance claim is {claim.state}", details={"state": claim.state})
    move(session, claim, "cancelled", now, by=by, reason=reason, **({"freeze": True} if freeze else {}))
    _drop_sweep(session, claim, by, now)
    from inheritance.notices import tell
    tell(session, ctx, claim.beneficiary_device_id, "inheritance_declined",
         {"type": "inheritance_declined", "claim_id": claim.id, "account_id": claim.account_id}, now)


def _drop_sweep(session, claim, actor: str, now) -> None:
    """Cancel the claim's built sweep if it has not gone out (its coins are freed)."""
    if not claim.sweep_spend_id:
        return
    from cosigner import reservations
    from cosigner.model import CANCELLABLE_STATES, Spend
    spend = session.get(Spend, claim.sweep_spend_id, with_for_update=True)
    if spend is not None and spend.state in CANCELLABLE_STATES:
        spend.state, spend.updated_at, spend.signed_psbt = "cancelled", now, None
        reservations.free(session, spend)
        audit.record(session, actor=actor, action="spend.cancelled", subject=spend.id,
                     details={"by": "inheritance_claim_closed"}, now=now)


def close_open_claims(session: Session, ctx: InheritanceContext, account_id: str, reason: str, actor: str,
                      now: dt.datetime, *, beneficiary: str | None = None) -> int:
    """Cancel the account's open claims (of one beneficiary, or all) because the plan
    or the setup changed under them (`reason`); the beneficiaries are told. This is not
    a decline by the owner: it puts no block on new claims. Returns how many."""
    n = 0
    for claim in open_claims(session, account_id):
        if beneficiary is None or claim.beneficiary_device_id == beneficiary:
            session.refresh(claim, with_for_update=True)
            if claim.state in machine.OPEN_STATES:
                _decline(session, ctx, claim, by=actor, reason=reason, now=now)
                n += 1
    return n


def lengthen_waiting(session: Session, account_id: str, days: int, now: dt.datetime) -> None:
    """The plan's wait grew: each waiting claim now ends `days` after it started (never earlier)."""
    from inheritance.timeline import schedule_next
    for claim in open_claims(session, account_id):
        if claim.state == "waiting":
            ends = claim.created_at + dt.timedelta(days=days)
            if ends > claim.wait_ends_at:
                claim.wait_ends_at, claim.waiting_days, claim.updated_at = ends, days, now
                schedule_next(session, claim)


def b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode()
