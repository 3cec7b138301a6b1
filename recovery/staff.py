"""Operator staff on recovery cases: list, inspect with the audit trail, verify an
identity instead of the OTP, and release the operator's share early — only after two
different staff members approved. Every action is audited with the staff id."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from audit.model import AuditEvent
from recovery import machine
from recovery.cases import _audit, _move, _require_open, begin_collecting, get, release
from recovery.context import RecoveryContext
from recovery.errors import CaseStateError, InvalidScheme, StaffConflict
from recovery.limits import STAFF_APPROVALS_TO_RELEASE
from recovery.model import RecoveryCase


def list_cases(session: Session, state: str | None = None, limit: int = 100) -> list[RecoveryCase]:
    if state is not None and state not in machine.STATES:
        raise InvalidScheme(f"state must be one of {', '.join(machine.STATES)}", code="invalid_state")
    stmt = select(RecoveryCase).where(RecoveryCase.account_id.is_not(None))
    if state:
        stmt = stmt.where(RecoveryCase.state == state)
    return list(session.scalars(stmt.order_by(RecoveryCase.created_at.desc()).limit(max(1, min(limit, 500)))))


def trail(session: Session, case: RecoveryCase) -> list[AuditEvent]:
    """Audit events about the case (and recovery events about its account)."""
    stmt = select(AuditEvent).where(or_(AuditEvent.subject == case.id,
                                        (AuditEvent.subject == case.account_id) &
                                        AuditEvent.action.like("recovery.%")))
    return list(session.scalars(stmt.order_by(AuditEvent.seq)))


def verify_identity(session: Session, ctx: RecoveryContext, case_id, staff_id: str, now: dt.datetime) -> RecoveryCase:
    """Staff checked the requester's identity out of band: requested → otp_verified →
    collecting, exactly as a right OTP would (the delay still applies)."""
    case = get(session, case_id, lock=True)
    if case.account_id is None:
        raise CaseStateError("this case names no account", code="no_account")
    _require_open(session, ctx, case, now)
    if case.state != "requested":
        raise CaseStateError(f"the case is {case.state}; identity is already verified", code="otp_already_verified")
    case.verified_by, case.otp_hash = f"staff:{staff_id}", None
    _move(session, case, "otp_verified", now, by=f"staff:{staff_id}", reason="identity_verified_by_staff")
    begin_collecting(session, ctx, case, now)
    return case


def approve_release(session: Session, ctx: RecoveryContext, case_id, staff_id: str, now: dt.datetime) -> RecoveryCase:
    """Record one staff approval for releasing the operator's share before the delay
    ends; the second approval by a different staff member releases it. The case must
    be `waiting` (identity verified, enough shares in). Raises StaffConflict when the
    same staff member approves twice."""
    case = get(session, case_id, lock=True)
    _require_open(session, ctx, case, now)
    if case.state != "waiting":
        raise CaseStateError(f"the case is {case.state}; early release needs a waiting case",
                             code="case_not_waiting")
    approvals = list(case.staff_approvals or [])
    if any(a["staff"] == staff_id for a in approvals):
        raise StaffConflict("you already approved this release; a different staff member must approve")
    approvals.append({"staff": staff_id, "at": now.isoformat()})
    case.staff_approvals = approvals
    case.updated_at = now
    _audit(session, case, f"staff:{staff_id}", "early_release_approved", now, approvals=len(approvals))
    if len({a["staff"] for a in approvals}) >= STAFF_APPROVALS_TO_RELEASE:
        release(session, ctx, case, now, by=f"staff:{staff_id}", early=True)
    return case


def cancel(session: Session, case_id, staff_id: str, now: dt.datetime) -> RecoveryCase:
    case = get(session, case_id, lock=True)
    if case.state not in machine.OPEN_STATES:
        raise CaseStateError(f"the case is {case.state}", code="case_closed")
    _move(session, case, "cancelled", now, by=f"staff:{staff_id}", reason="cancelled_by_staff")
    return case
