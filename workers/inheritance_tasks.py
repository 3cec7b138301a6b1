"""Inheritance work for Celery: scheduled-job handlers only (`inheritance.advance` runs a
claim's due timed steps — reminders, the release of the operator share, expiry;
`inheritance.plan_apply` applies a pending plan loosening). The database is the truth:
the `reconcile` beat task re-enqueues any due or stale job, so a lost message or a
killed worker delays a step but never loses it; every handler is idempotent."""
from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy.orm import Session

import inheritance.sweep  # noqa: F401  (cosigner hooks: inheritance-sweep mode)
from workers.jobs import handler

log = logging.getLogger("custos.workers.inheritance")
_contexts: dict[int, object] = {}


def _ictx():
    from inheritance.context import inheritance_context
    from workers.context import current_settings
    settings = current_settings()
    if id(settings) not in _contexts:
        _contexts[id(settings)] = inheritance_context(settings)
    return _contexts[id(settings)]


@handler("inheritance.advance")
def advance_claim(session: Session, subject: str, now: dt.datetime) -> None:
    from inheritance.timeline import advance
    state = advance(session, _ictx(), subject, now)
    log.info("inheritance claim %s advanced: %s", subject, state)


@handler("inheritance.plan_apply")
def apply_plan_change(session: Session, subject: str, now: dt.datetime) -> None:
    from inheritance.plans import apply_change
    applied = apply_change(session, _ictx(), subject, now)
    log.info("inheritance plan change %s: %s", subject, "applied" if applied else "not applied")
