"""Scheduled-job handlers, registered by kind. Each is idempotent and runs inside the
job's transaction (see workers.jobs.run)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from workers.jobs import handler


@handler("audit.verify")
def verify_audit(session: Session, subject: str, now: dt.datetime) -> None:
    """Verify the audit chain and append the outcome to it (actor `system`)."""
    from audit import services as audit
    report = audit.verify(session)
    audit.record(session, actor="system", action="audit.verified", subject=subject,
                 details={"ok": report.ok, "checked": report.checked,
                          "first_broken_seq": report.first_broken_seq}, now=now)
