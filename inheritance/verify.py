"""Out-of-band confirmation of inheritance plan loosenings (issue #17's privileged
actions `inheritance.add_beneficiary` and `inheritance.shorten_wait`).

When the account has a verification channel, a pending plan change also asks the
owner's second channel to confirm it (`ask`, at the moment it is proposed); the change
takes effect only after its delay AND that confirmation (`inheritance.plans.may_apply`
consults `verification.outstanding`). Subject kind `inheritance_change`:
- confirmed: if the delay is already over, the `inheritance.plan_apply` job is scheduled
  for now (the worker applies it, re-checking the plan against the state of now); else
  the job already scheduled at the end of the delay applies it;
- cancelled (the Cancel link, five wrong codes, or no confirmation within VERIFY_TTL):
  the change is cancelled.
A change that is closed another way (the owner cancels it, a newer request supersedes
it) withdraws its request, so its links stop working.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from verification import outstanding, protect, withdraw
from verification.services import register_delayed_change

KIND = "inheritance_change"
_TITLES = {"inheritance.add_beneficiary": "Add an inheritance beneficiary",
           "inheritance.shorten_wait": "Shorten the inheritance waiting period"}


def ask(session: Session, cosigner_ctx, account, change, now: dt.datetime) -> None:
    """Ask the second channel to confirm `change` when the account has one (no-op otherwise).
    The page shows only what the change does and when."""
    rows = ([["Beneficiary", change.payload.get("label") or "(no label)"]] if "device_id" in change.payload
            else [["Waiting period", f"{change.payload['waiting_days']} days"]])
    rows.append(["Takes effect", change.effective_at.strftime("%Y-%m-%d %H:%M UTC")])
    protect(session, cosigner_ctx, account, change.action, KIND, change.id,
            {"title": _TITLES[change.action], "account": account.name, "rows": rows}, now)


def waiting_for_confirmation(session: Session, change) -> bool:
    return outstanding(session, KIND, change.id)


def closed(session: Session, change, now: dt.datetime, reason: str) -> None:
    withdraw(session, KIND, change.id, now, reason=reason)


def _load(session, change_id):
    from inheritance.model import InheritancePlanChange
    return session.get(InheritancePlanChange, change_id)


def _cancelled(session, change, reason, now) -> None:
    from inheritance.plans import close
    close(session, change, "cancelled", f"verification_{reason}", "verification", now)


register_delayed_change(KIND, _load, "inheritance.plan_apply", _cancelled)   # inheritance.plans.APPLY_JOB
