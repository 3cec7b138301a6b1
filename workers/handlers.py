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
    from cosigner.accounts import import_wallet
    import_wallet(session, _ctx(), subject, now)


@handler("chain.restore")
def restore_account(session: Session, subject: str, now: dt.datetime) -> None:
    """Index a restored account's past (scanblocks, or a scan from its birthday).
    Resumes where a previous attempt stopped; bitcoind down or another follower
    holding the lock raises and the reconciler retries."""
    from chain import restore
    from config.bootstrap import chain_follower
    from cosigner.model import Account
    from workers.context import current_settings
    account = session.get(Account, subject)
    if account is None:
        return
    restore.run(chain_follower(current_settings(), lock_wait=30.0), subject, account.birthday, now)


def _ctx():
    from config.bootstrap import cosigner_context
    from workers.context import current_settings
    return cosigner_context(current_settings())


@handler("spend.release")
def release_spend(session: Session, subject: str, now: dt.datetime) -> None:
    """Release a delayed spend when due (re-checks policy and chain). Idempotent."""
    from cosigner.spends import release
    release(session, _ctx(), subject, now)


@handler("spend.approval_expiry")
def expire_approval(session: Session, subject: str, now: dt.datetime) -> None:
    from cosigner.spends import expire_approval as expire
    expire(session, _ctx(), subject, now)


@handler("spend.reservation_expiry")
def expire_reservation(session: Session, subject: str, now: dt.datetime) -> None:
    """A built spend's coins are freed when its reservation ends; held ones renew."""
    from cosigner.spend_lifecycle import expire_reservation as expire
    expire(session, _ctx(), subject, now)


@handler("policy.apply")
def apply_policy_change(session: Session, subject: str, now: dt.datetime) -> None:
    """A pending loosening change takes effect (unless it was cancelled). Idempotent."""
    from cosigner.policy_service import apply_change
    apply_change(session, subject, now)


@handler("verification.expiry")
def expire_verification(session: Session, subject: str, now: dt.datetime) -> None:
    """An out-of-band verification still pending at its deadline expires and cancels what
    it protected (a spend's coins are freed). Idempotent."""
    from verification.services import expire
    expire(session, _ctx(), subject, now)


@handler("verification.channel_apply")
def apply_channel_change(session: Session, subject: str, now: dt.datetime) -> None:
    """A channel replacement or removal takes effect once due and confirmed. Idempotent."""
    from verification.channels import apply_change
    apply_change(session, subject, now)
