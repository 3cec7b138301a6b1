"""A claim's timed steps, run by the durable `inheritance.advance` job (scheduled at
each claim's next deadline; the beat reconciler re-enqueues a due or stale job, so a
lost message or a killed worker delays a step but never loses it): reminders while it
waits, the release of the operator share when the wait is over, the expiry of a
released claim that was never swept. Every step re-reads the claim under its row lock
and is idempotent: a step that is not due does nothing.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from inheritance import machine, plans
from inheritance.claims import _drop_sweep, get, move
from inheritance.context import InheritanceContext
from inheritance.model import InheritanceClaim
from inheritance.schedule import next_reminder
from recovery.model import RecoverySetup
from workers.jobs import ScheduledJob, schedule

ADVANCE_JOB = "inheritance.advance"


def schedule_next(session: Session, claim: InheritanceClaim) -> None:
    """A pending `inheritance.advance` job at the claim's next deadline (unless one is
    already pending for that time)."""
    when = machine.next_due(claim)
    if when is None:
        return
    exists = session.scalar(select(ScheduledJob.id).where(
        ScheduledJob.kind == ADVANCE_JOB, ScheduledJob.subject == claim.id, ScheduledJob.state == "pending",
        ScheduledJob.due_at == when).limit(1))
    if exists is None:
        schedule(session, ADVANCE_JOB, claim.id, when)


def advance(session: Session, ctx: InheritanceContext, claim_id: str, now: dt.datetime) -> str:
    """Run every step due at `now`, then schedule the next one. An open claim whose
    ground moved is cancelled first: the recovery setup was replaced (`setup_replaced`:
    its share no longer combines with the operator's), the beneficiary left the plan
    (`beneficiary_removed`), is no longer eligible (`beneficiary_not_eligible`: not a
    contact any more, device revoked) or the account changed owner (`owner_changed`, e.g.
    a completed recovery). Returns the claim's state."""
    claim = get(session, claim_id, lock=True)
    if claim.state in machine.OPEN_STATES:
        reason = _ground_moved(session, claim)
        if reason is not None:
            from inheritance.claims import _decline
            _decline(session, ctx, claim, by="system", reason=reason, now=now)
    for _ in range(64):            # reminders missed while workers were down are sent once, not each
        step = machine.due_step(claim, now)
        if step is None:
            break
        if step == "release":
            release(session, ctx, claim, now)
        elif step == "remind":
            remind(session, ctx, claim, now)
        elif step == "expire":
            move(session, claim, "expired", now, reason="release_ttl")
            _drop_sweep(session, claim, "system", now)
    schedule_next(session, claim)
    return claim.state


def _ground_moved(session: Session, claim: InheritanceClaim) -> str | None:
    from cosigner.model import Account
    setup = session.scalar(select(RecoverySetup.id).where(RecoverySetup.account_id == claim.account_id)
                           .order_by(RecoverySetup.created_at.desc()).limit(1))
    if setup != claim.setup_id:
        return "setup_replaced"
    if plans.named(plans.get(session, claim.account_id), claim.beneficiary_device_id) is None:
        return "beneficiary_removed"
    account = session.get(Account, claim.account_id)
    if account is None or account.owner_device_id != claim.owner_device_id:
        return "owner_changed"
    from inheritance.beneficiaries import check
    from inheritance.errors import InvalidPlan
    try:
        check(session, account, session.get(RecoverySetup, claim.setup_id), claim.beneficiary_device_id)
    except InvalidPlan:
        return "beneficiary_not_eligible"      # no longer a contact, or its device revoked
    return None


def remind(session: Session, ctx: InheritanceContext, claim: InheritanceClaim, now: dt.datetime) -> None:
    """Tell everyone again (push, system message, mail) and set the next reminder from
    the pure schedule (weekly, 7 days and 1 day before the end). Reminders whose time
    passed while nothing ran collapse into this one."""
    from inheritance.notices import tell_everyone
    claim.reminders_sent += 1
    tell_everyone(session, ctx, claim, push_kind="inheritance_claim_reminder",
                  note={"type": "inheritance_claim_reminder", "claim_id": claim.id, "account_id": claim.account_id,
                        "wait_ends_at": claim.wait_ends_at.isoformat()},
                  subject="Reminder: a Custos inheritance claim is in progress",
                  body=f"An inheritance claim on your wallet (claim {claim.id}) is in progress. Unless you cancel "
                       f"it from your phone, the operator's share is released after "
                       f"{claim.wait_ends_at:%Y-%m-%d %H:%M} UTC.", now=now)
    claim.next_reminder_at = next_reminder(claim.created_at, claim.wait_ends_at, ctx.reminder_every, now)
    claim.updated_at = now
    from audit import services as audit
    audit.record(session, actor="system", action="inheritance.reminded", subject=claim.id,
                 details={"account": claim.account_id, "reminders_sent": claim.reminders_sent}, now=now)


def release(session: Session, ctx: InheritanceContext, claim: InheritanceClaim, now: dt.datetime) -> None:
    """waiting → released: the operator's share is decrypted and sealed to the claim's
    sealing key here and nowhere else (the transition refuses before anything is
    decrypted). The beneficiary is told; so are the owner and holders (an owner who is
    alive can still cancel or freeze: nothing moves before the sweep)."""
    from recovery.secrets_box import seal_to
    from recovery.setup import operator_share
    setup = session.get(RecoverySetup, claim.setup_id)
    machine.transition(claim, "released", now)
    plain = operator_share(ctx.recovery, setup)
    try:
        claim.released_share = seal_to(claim.sealing_key, plain)
    finally:
        del plain
    claim.released_at, claim.expires_at, claim.next_reminder_at = now, now + ctx.release_ttl, None
    from audit import services as audit
    audit.record(session, actor="system", action="inheritance.released", subject=claim.id,
                 details={"account": claim.account_id, "beneficiary": claim.beneficiary_device_id}, now=now)
    from inheritance.notices import tell, tell_everyone
    tell(session, ctx, claim.beneficiary_device_id, "inheritance_released",
         {"type": "inheritance_released", "claim_id": claim.id, "account_id": claim.account_id}, now)
    tell_everyone(session, ctx, claim, push_kind="inheritance_claim_released",
                  note={"type": "inheritance_claim_released", "claim_id": claim.id, "account_id": claim.account_id},
                  subject="A Custos inheritance claim was released",
                  body=f"The waiting period of inheritance claim {claim.id} ended and the operator's share was "
                       "released to the beneficiary. If this is wrong, cancel the claim or freeze the account from "
                       "your phone now: nothing is moved before the beneficiary's sweep is signed.", now=now)
