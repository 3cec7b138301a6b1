"""Recovery work for Celery: scheduled-job handlers (`recovery.advance` runs a case's due
timed steps; `recovery.mail` sends one outbox mail over SMTP) and thin beat tasks
(custody challenges, backup reminders). The database is the truth: the `reconcile` beat
task re-enqueues any due `recovery.*` job, so a lost message or a killed worker delays a
step but never loses it; every handler is idempotent."""
from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from sqlalchemy.orm import Session

import recovery.permissions  # noqa: F401  (messaging rule)
import recovery.sweep  # noqa: F401  (cosigner hooks: sweep mode)
from store.base import utcnow
from store.session import session_scope
from workers.jobs import handler

log = logging.getLogger("custos.workers.recovery")
_contexts: dict[int, object] = {}


def _rctx(settings):
    key = id(settings)
    if key not in _contexts:
        from recovery.context import recovery_context
        _contexts[key] = recovery_context(settings)
    return _contexts[key]


def _current():
    from workers.context import current_settings
    return current_settings()


@handler("recovery.advance")
def advance_case(session: Session, subject: str, now: dt.datetime) -> None:
    """Run the case's due timed steps (expire, → waiting, release after the delay,
    reminders) and schedule the next one."""
    from recovery.cases import advance
    state = advance(session, _rctx(_current()), subject, now)
    log.info("recovery case %s advanced: %s", subject, state)


@handler("recovery.setup_apply")
def apply_setup_change(session: Session, subject: str, now: dt.datetime) -> None:
    """Replace the recovery setup when its pending change may apply (re-decided now)."""
    from recovery.setup_changes import apply_change
    applied = apply_change(session, _rctx(_current()), subject, now)
    log.info("recovery setup change %s: %s", subject, "applied" if applied else "not applied")


@handler("recovery.mail")
def send_mail(session: Session, subject: str, now: dt.datetime) -> None:
    """Send one outbox mail over SMTP (network errors propagate: the job is retried)."""
    from recovery.mailer import SmtpMailer
    mailer = _rctx(_current()).mailer
    if isinstance(mailer, SmtpMailer):
        mailer.deliver(session, subject, now)


@shared_task(bind=True, name="workers.recovery_tasks.custody_checks")
def custody_checks(self) -> int:
    """Beat: challenge every device holder; refresh each account's custody status."""
    from recovery.custody import challenge_all
    settings = self.app.custos_settings
    with session_scope(settings.database_url) as session:
        return challenge_all(session, _rctx(settings), utcnow())


@shared_task(bind=True, name="workers.recovery_tasks.backup_reminders")
def backup_reminders(self) -> int:
    """Beat: remind owners to back up (balance, activity or age thresholds)."""
    from cosigner.accounts import balance
    from recovery.backups import remind
    settings = self.app.custos_settings
    with session_scope(settings.database_url) as session:
        def balance_of(account):
            return balance(session, account, utcnow())["confirmed"]

        return remind(session, balance_of, utcnow(), balance_sat=settings.backup_reminder_balance_sat,
                      activity=settings.backup_reminder_activity,
                      age=dt.timedelta(seconds=settings.backup_reminder_age))
