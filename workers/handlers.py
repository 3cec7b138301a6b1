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


@handler("account.import")
def import_account(session: Session, subject: str, now: dt.datetime) -> None:
    """Create/load the account's watch-only wallet in bitcoind and import its
    descriptors. Idempotent; bitcoind being down raises and the reconciler retries."""
    from config.bootstrap import cosigner_context
    from cosigner.accounts import import_wallet
    from workers.context import current_settings
    import_wallet(session, cosigner_context(current_settings()), subject, now)
