"""The owner's inheritance plan: who may claim (beneficiaries) and how long a claim
waits. `put` stores what tightens at once (a beneficiary removed, the wait lengthened)
and holds what loosens (a beneficiary added, the wait shortened) as a pending change for
POLICY_LOOSEN_DELAY, notifying the owner, cancellable by the owner. Whether a pending
change may be applied now is decided in ONE place, `may_apply`.

Every service takes an open session (the caller owns the transaction), the context and
`now`; a refusal raises before anything is written.
"""
from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import services as audit
from cosigner.model import Account
from inheritance import beneficiaries as rules
from inheritance.context import InheritanceContext
from inheritance.errors import ChangeNotFound, InvalidPlan, PlanNotFound
from inheritance.limits import MAX_BENEFICIARIES, MAX_LABEL, WAITING_DAYS_DEFAULT, WAITING_DAYS_MAX, WAITING_DAYS_MIN
from inheritance.model import InheritancePlan, InheritancePlanChange
from recovery import setup as setups
from recovery.errors import NotConfigured
from workers.jobs import schedule

ADD_BENEFICIARY = "inheritance.add_beneficiary"      # privileged actions (verification, issue #17)
SHORTEN_WAIT = "inheritance.shorten_wait"
APPLY_JOB = "inheritance.plan_apply"


def parse(body: dict) -> tuple[list[dict], int]:
    """The requested plan: ([{device_id, label}], waiting_days). Raises InvalidPlan
    (`invalid_beneficiary`, `duplicate_beneficiary`, `invalid_waiting_days`)."""
    raw = body.get("beneficiaries")
    if not isinstance(raw, list) or len(raw) > MAX_BENEFICIARIES:
        raise InvalidPlan(f"beneficiaries must be a list of at most {MAX_BENEFICIARIES} entries",
                          code="invalid_beneficiary")
    out, seen = [], set()
    for i, b in enumerate(raw):
        device_id = b.get("device_id") if isinstance(b, dict) else None
        label = b.get("label") if isinstance(b, dict) else None
        if not isinstance(device_id, str) or not 0 < len(device_id) <= 40 or set(b) - {"device_id", "label"}:
            raise InvalidPlan(f"beneficiaries[{i}] must be {{device_id, label}}", code="invalid_beneficiary")
        if label is not None and (not isinstance(label, str) or len(label) > MAX_LABEL):
            raise InvalidPlan(f"beneficiaries[{i}].label must be at most {MAX_LABEL} characters",
                              code="invalid_beneficiary")
        if device_id in seen:
            raise InvalidPlan(f"beneficiaries[{i}] names a device twice", code="duplicate_beneficiary")
        seen.add(device_id)
        out.append({"device_id": device_id, "label": label})
    days = body.get("waiting_days", WAITING_DAYS_DEFAULT)
    if not isinstance(days, int) or isinstance(days, bool) or not WAITING_DAYS_MIN <= days <= WAITING_DAYS_MAX:
        raise InvalidPlan(f"waiting_days must be an integer from {WAITING_DAYS_MIN} to {WAITING_DAYS_MAX}",
                          code="invalid_waiting_days", details={"min": WAITING_DAYS_MIN, "max": WAITING_DAYS_MAX})
    return out, days


def get(session: Session, account_id: str, *, lock: bool = False) -> InheritancePlan | None:
    stmt = select(InheritancePlan).where(InheritancePlan.account_id == account_id)
    return session.scalar(stmt.with_for_update() if lock else stmt)


def require(session: Session, account_id: str) -> InheritancePlan:
    plan = get(session, account_id)
    if plan is None:
        raise PlanNotFound("this account has no inheritance plan")
    return plan


def pending(session: Session, account_id: str) -> list[InheritancePlanChange]:
    return list(session.scalars(select(InheritancePlanChange).where(
        InheritancePlanChange.account_id == account_id, InheritancePlanChange.state == "pending")
        .order_by(InheritancePlanChange.created_at)))


def named(plan: InheritancePlan | None, device_id: str) -> dict | None:
    """The plan's entry for `device_id` if it is a beneficiary in force, else None."""
    return next((b for b in (plan.beneficiaries if plan else []) if b["device_id"] == device_id), None)


def put(session: Session, ctx: InheritanceContext, account: Account, body: dict, *, actor: str,
        now: dt.datetime) -> tuple[InheritancePlan, list[InheritancePlanChange]]:
    """Set the plan. Validates everything first (InvalidPlan with a code; NotConfigured
    without a recovery setup: nothing stored). Then, under the account's row lock:
    removals and a longer wait apply now (open claims of a removed beneficiary are
    cancelled; waiting claims wait the longer time); each added beneficiary and a shorter
    wait become a pending change (a newer request supersedes an older pending one for
    the same thing). Returns (plan in force, pending changes)."""
    wanted, days = parse(body)
    try:
        setup = setups.current(session, account.id)
    except NotConfigured:
        raise InvalidPlan("set up recovery first: a beneficiary holds a share of the recovery seed",
                          code="recovery_not_configured") from None
    holders = {b["device_id"]: rules.check(session, account, setup, b["device_id"]) for b in wanted}
    session.get(Account, account.id, with_for_update=True)
    plan = get(session, account.id, lock=True)
    if plan is None:
        plan = InheritancePlan(account_id=account.id, waiting_days=days, beneficiaries=[], version=1,
                               created_at=now, updated_at=now)
        session.add(plan)
        session.flush()
        audit.record(session, actor=actor, action="inheritance.plan_created", subject=account.id,
                     details={"waiting_days": days}, now=now)
    wanted_ids = {b["device_id"] for b in wanted}
    current = {b["device_id"]: b for b in plan.beneficiaries}
    kept = []
    for b in plan.beneficiaries:
        if b["device_id"] in wanted_ids:
            label = next(w["label"] for w in wanted if w["device_id"] == b["device_id"])
            kept.append({**b, "label": label})
        else:
            _removed(session, ctx, plan, b["device_id"], actor, now)
    changed = kept != plan.beneficiaries
    plan.beneficiaries = kept
    for change in pending(session, account.id):
        if change.action == ADD_BENEFICIARY and change.payload["device_id"] not in wanted_ids:
            close(session, change, "cancelled", "removed_from_request", actor, now)
        if change.action == SHORTEN_WAIT and days >= plan.waiting_days:
            close(session, change, "superseded", "wait_not_shortened", actor, now)
    if days > plan.waiting_days:
        _lengthen(session, plan, days, actor, now)
        changed = True
    elif days < plan.waiting_days:
        _propose(session, ctx, account, SHORTEN_WAIT, {"waiting_days": days}, actor, now)
    for b in wanted:
        if b["device_id"] not in current:
            _propose(session, ctx, account, ADD_BENEFICIARY,
                     {"device_id": b["device_id"], "label": b["label"], "holder_id": holders[b["device_id"]].id},
                     actor, now)
    if changed:
        plan.version, plan.updated_at = plan.version + 1, now
    return plan, pending(session, account.id)


def _propose(session, ctx, account, action: str, payload: dict, actor: str, now) -> InheritancePlanChange:
    """A pending loosening (superseding an older pending one for the same thing); the
    owner is pushed `inheritance_change_pending`."""
    for old in pending(session, account.id):
        if old.action == action and (action == SHORTEN_WAIT or old.payload["device_id"] == payload["device_id"]):
            if old.payload == payload:
                return old
            close(session, old, "superseded", "newer_request", actor, now)
    change = InheritancePlanChange(id="ichg_" + secrets.token_hex(10), account_id=account.id, action=action,
                                   payload=payload, state="pending", effective_at=now + ctx.loosen_delay,
                                   created_by=actor, created_at=now)
    session.add(change)
    session.flush()
    schedule(session, APPLY_JOB, change.id, change.effective_at)
    from inheritance.verify import ask
    ask(session, ctx.cosigner, account, change, now)
    from recovery.notices import push
    push(session, account.owner_device_id, "inheritance_change_pending", now)
    audit.record(session, actor=actor, action="inheritance.change_pending", subject=account.id,
                 details={"change": change.id, "action": action, "effective_at": change.effective_at.isoformat(),
                          **({"beneficiary": payload["device_id"]} if "device_id" in payload else payload)}, now=now)
    return change


def close(session, change, state: str, reason: str, actor: str, now) -> None:
    """Close a pending change (audited); its out-of-band request, if any, is withdrawn."""
    from inheritance.verify import closed
    closed(session, change, now, reason)
    change.state, change.closed_at, change.closed_reason = state, now, reason
    audit.record(session, actor=actor, action=f"inheritance.change_{state}", subject=change.account_id,
                 details={"change": change.id, "action": change.action, "reason": reason}, now=now)


def _removed(session, ctx, plan, device_id: str, actor: str, now) -> None:
    from inheritance.claims import close_open_claims
    audit.record(session, actor=actor, action="inheritance.beneficiary_removed", subject=plan.account_id,
                 details={"beneficiary": device_id}, now=now)
    close_open_claims(session, ctx, plan.account_id, "beneficiary_removed", actor, now, beneficiary=device_id)


def _lengthen(session, plan, days: int, actor: str, now) -> None:
    """Immediate: the plan waits longer, and so do waiting claims (counted from their start)."""
    from inheritance.claims import lengthen_waiting
    audit.record(session, actor=actor, action="inheritance.wait_lengthened", subject=plan.account_id,
                 details={"from": plan.waiting_days, "to": days}, now=now)
    plan.waiting_days = days
    lengthen_waiting(session, plan.account_id, days, now)


def may_apply(session: Session, change: InheritancePlanChange, now: dt.datetime) -> bool:
    """THE decision whether a pending plan change may take effect now: it is still
    pending, its delay is over, and — when the account had a verification channel when it
    was asked for — the owner confirmed it on that channel (privileged actions
    `inheritance.add_beneficiary` / `inheritance.shorten_wait`, inheritance.verify)."""
    from inheritance.verify import waiting_for_confirmation
    return change.state == "pending" and now >= change.effective_at and not waiting_for_confirmation(session, change)


def apply_change(session: Session, ctx: InheritanceContext, change_id: str, now: dt.datetime) -> bool:
    """Job body (`inheritance.plan_apply`): apply a pending change when `may_apply`
    says so, re-checking it against the state of now — a beneficiary who is no longer a
    contact, a beneficiary holder or enough with the operator's share makes the change
    `void`; a shortening applies only if still shorter. The beneficiary named is told so
    (system message `inheritance_named`, nothing else). Idempotent. Returns whether it
    applied."""
    change = session.get(InheritancePlanChange, change_id)
    if change is None or not may_apply(session, change, now):
        return False
    account = session.get(Account, change.account_id, with_for_update=True)
    session.refresh(change)            # what a cancel committed while we waited for the lock
    if not may_apply(session, change, now):
        return False
    plan = get(session, change.account_id, lock=True)
    if account is None or plan is None:
        close(session, change, "void", "plan_gone", "system", now)
        return False
    if change.action == SHORTEN_WAIT:
        days = change.payload["waiting_days"]
        if days >= plan.waiting_days:
            close(session, change, "void", "not_shorter", "system", now)
            return False
        audit.record(session, actor=f"change:{change.id}", action="inheritance.wait_shortened",
                     subject=plan.account_id, details={"from": plan.waiting_days, "to": days}, now=now)
        plan.waiting_days = days
    else:
        device_id = change.payload["device_id"]
        try:
            holder = rules.check(session, account, setups.current(session, account.id), device_id)
        except (InvalidPlan, NotConfigured) as err:
            close(session, change, "void", getattr(err, "code", "invalid"), "system", now)
            return False
        if named(plan, device_id) is None:
            plan.beneficiaries = [*plan.beneficiaries, {"device_id": device_id, "label": change.payload.get("label"),
                                                        "holder_id": holder.id, "named_at": now.isoformat()}]
            from inheritance.notices import tell
            tell(session, ctx, device_id, "inheritance_named",
                 {"type": "inheritance_named", "account_id": account.id}, now)
            audit.record(session, actor=f"change:{change.id}", action="inheritance.beneficiary_added",
                         subject=plan.account_id, details={"beneficiary": device_id}, now=now)
    change.state, change.closed_at = "applied", now
    plan.version, plan.updated_at = plan.version + 1, now
    return True


def cancel_change(session: Session, account: Account, change_id, *, actor: str, now: dt.datetime
                  ) -> InheritancePlanChange:
    """The owner cancels a pending change. Idempotent for a closed one. Raises ChangeNotFound.
    The account's lock comes first: an apply committed meanwhile is not overwritten."""
    session.get(Account, account.id, with_for_update=True)
    change = session.get(InheritancePlanChange, change_id, populate_existing=True) \
        if isinstance(change_id, str) and len(change_id) <= 40 else None
    if change is None or change.account_id != account.id:
        raise ChangeNotFound("no such inheritance plan change")
    if change.state == "pending":
        close(session, change, "cancelled", "cancelled_by_owner", actor, now)
    return change

