"""Operator staff on inheritance claims: list and inspect with the audit trail.
Cancelling is inheritance.claims.staff_cancel (audited as `staff:<id>`). There is no
staff path that shortens a wait or releases a share early."""
from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from audit.model import AuditEvent
from inheritance.model import InheritanceClaim


def list_claims(session: Session, state: str | None = None, limit: int = 100) -> list[InheritanceClaim]:
    """Claims newest first, optionally of one state (validated by the caller's schema)."""
    stmt = select(InheritanceClaim)
    if state:
        stmt = stmt.where(InheritanceClaim.state == state)
    return list(session.scalars(stmt.order_by(InheritanceClaim.created_at.desc()).limit(max(1, min(limit, 500)))))


def trail(session: Session, claim: InheritanceClaim) -> list[AuditEvent]:
    """Audit events about the claim (and inheritance events about its account)."""
    stmt = select(AuditEvent).where(or_(AuditEvent.subject == claim.id,
                                        (AuditEvent.subject == claim.account_id) &
                                        AuditEvent.action.like("inheritance.%")))
    return list(session.scalars(stmt.order_by(AuditEvent.seq)))
