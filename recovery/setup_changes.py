"""Replacing a recovery setup in force (privileged action `recovery.replace_setup`).

A phone thief who could replace the setup at once would delete the operator's share and
the contacts' slots the real owner needs to recover, and point the recovery e-mail at an
address of his own. So a replacement is a pending change:
- it is announced at once to the owner's devices (push `recovery_setup_change_pending`)
  and to the recovery e-mail in force (the old channel), and audited;
- it takes effect only after POLICY_LOOSEN_DELAY and, when the account has a
  verification channel, an out-of-band confirmation (the e-mailed page or a TOTP code
  within VERIFY_TTL; Cancel there, or no answer in time, cancels it);
- `may_apply` is the one place that decides whether it may take effect now; the job
  `recovery.setup_apply` then re-decides with the state of now: a frozen account (owner or
  staff), an owner who changed (a completed recovery), a recovery verified meanwhile, or a
  holder device revoked meanwhile makes the change void, and nothing is replaced;
- the owner can cancel it from any device (DELETE /v1/accounts/{id}/recovery/pending);
  a newer replacement supersedes it.
The requested setup (operator share and e-mail included) is sealed whole at rest; what
the owner is shown (`summary`) says only how many holders, which thresholds, and whether
the e-mail address changes.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import services as audit
from cosigner.model import Account
from cosigner.vault import SealedSecret, open_secret, seal
from recovery.context import RecoveryContext
from recovery.errors import RecoveryError, SetupChangeNotFound
from recovery.model import RecoverySetup, RecoverySetupChange
from recovery.notices import mail, push
from recovery.secrets_box import email_hash
from verification import outstanding, protect, withdraw
from verification.services import register_delayed_change
from workers.jobs import schedule

ACTION = "recovery.replace_setup"
KIND = "recovery_setup_change"
APPLY_JOB = "recovery.setup_apply"


def pending(session: Session, account_id: str) -> RecoverySetupChange | None:
    return session.scalar(select(RecoverySetupChange).where(
        RecoverySetupChange.account_id == account_id, RecoverySetupChange.state == "pending")
        .order_by(RecoverySetupChange.created_at.desc()).limit(1))


def _serial(requested) -> dict:
    """The request as PUT's body takes it (validated again when the change applies)."""
    holders = [{**{k: v for k, v in h.items() if k != "custody_public_key"},
                "custody_public_key": base64.b64encode(h["custody_public_key"]).decode()}
               for h in requested.holders]
    return {"scheme": requested.scheme.as_dict(), "holders": holders, "operator_share": requested.share,
            "email": requested.email}


def _summary(ctx: RecoveryContext, existing: RecoverySetup, requested) -> dict:
    scheme = requested.scheme.as_dict()
    return {"holders": len(requested.holders),
            "devices": sum(1 for h in requested.holders if h["kind"] == "device"),
            "groups": scheme["groups"], "group_threshold": scheme["group_threshold"],
            "email_changed": email_hash(ctx.email_key, requested.email) != existing.email_hash}


def _rows(change: RecoverySetupChange) -> list[list[str]]:
    s = change.summary
    groups = ", ".join(f"{g['threshold']} of {g['count']}" for g in s["groups"])
    return [["Holders", f"{s['holders']} ({s['devices']} devices and the operator)"],
            ["Shares needed", groups + (f" (any {s['group_threshold']} groups)" if len(s["groups"]) > 1 else "")],
            ["Recovery e-mail", "changes" if s["email_changed"] else "unchanged"],
            ["Takes effect", change.effective_at.strftime("%Y-%m-%d %H:%M UTC")]]


def _delay(ctx: RecoveryContext) -> dt.timedelta:
    from verification.privileged import rule
    return ctx.loosen_delay if rule(ACTION).delay else dt.timedelta(0)


def propose(session: Session, ctx: RecoveryContext, cosigner, account: Account, existing: RecoverySetup,
            requested, *, actor: str, now: dt.datetime) -> RecoverySetupChange:
    """Record a pending replacement (under the caller's account row lock), superseding an
    older pending one; schedule its job at the end of the delay; ask the second channel
    when the account has one (`cosigner` is the cosigner context; verification.protect
    fails closed without it); tell the owner's device and the recovery e-mail in force."""
    old = pending(session, account.id)
    if old is not None:
        close(session, old, "superseded", "newer_request", actor, now)
    change = RecoverySetupChange(id="rsch_" + secrets.token_hex(12), account_id=account.id, state="pending",
                                 summary=_summary(ctx, existing, requested), effective_at=now + _delay(ctx),
                                 created_by=actor, created_at=now, kek_id="", wrapped_dek=b"", ciphertext=b"")
    sealed = seal(ctx.keyring, json.dumps(_serial(requested)).encode(), f"rsch:{change.id}")
    change.kek_id, change.wrapped_dek, change.ciphertext = sealed.kek_id, sealed.wrapped_dek, sealed.ciphertext
    session.add(change)
    session.flush()
    schedule(session, APPLY_JOB, change.id, change.effective_at)
    protect(session, cosigner, account, ACTION, KIND, change.id,
            {"title": "Replace the recovery setup", "account": account.name, "rows": _rows(change)}, now)
    push(session, account.owner_device_id, "recovery_setup_change_pending", now)
    mail(session, ctx, existing, "recovery.setup_change", "Your recovery setup is about to be replaced",
         "\n".join([f"Someone using the owner's phone of account {account.name} asked to replace its recovery "
                    "setup (who holds the recovery shares and which e-mail address recovers the account).", ""]
                   + [f"{label}: {value}" for label, value in _rows(change)]
                   + ["", "If this was not you: open the app on a device you trust and cancel it, or freeze the "
                      "account. Nothing changes before the time above."]), now)
    audit.record(session, actor=actor, action="recovery.setup_change_pending", subject=account.id,
                 details={"change": change.id, "effective_at": change.effective_at.isoformat(),
                          "holders": change.summary["holders"], "email_changed": change.summary["email_changed"]},
                 now=now)
    return change


def close(session: Session, change: RecoverySetupChange, state: str, reason: str, actor: str,
          now: dt.datetime) -> None:
    """Close a pending change (audited); its out-of-band request, if any, is withdrawn."""
    withdraw(session, KIND, change.id, now, reason=reason)
    change.state, change.closed_at, change.closed_reason = state, now, reason
    audit.record(session, actor=actor, action=f"recovery.setup_change_{state}", subject=change.account_id,
                 details={"change": change.id, "reason": reason}, now=now)


def may_apply(session: Session, change: RecoverySetupChange, now: dt.datetime) -> bool:
    """THE decision whether a pending replacement may take effect now: still pending, its
    delay over, and no out-of-band confirmation outstanding."""
    return change.state == "pending" and now >= change.effective_at and not outstanding(session, KIND, change.id)


def _void_reason(session: Session, account: Account, change: RecoverySetupChange) -> str | None:
    from cosigner.policy_service import current
    from recovery.model import RecoveryAccountState
    policy = current(session, account.id)
    if policy.frozen or policy.staff_frozen:
        return "account_frozen"
    state = session.get(RecoveryAccountState, account.id)
    if account.owner_device_id != change.created_by or (state is not None and state.mode == "sweep"):
        return "owner_changed"
    return None


def apply_change(session: Session, ctx: RecoveryContext, change_id: str, now: dt.datetime) -> bool:
    """Job body (`recovery.setup_apply`): replace the setup when `may_apply` says so,
    deciding with the state of now (see the module's docstring); a change that can no
    longer apply is closed `void` with the reason and the owner pushed
    `recovery_setup_change_void`. Idempotent. Returns whether it applied."""
    from recovery.setup import store, validate
    change = session.get(RecoverySetupChange, change_id)
    if change is None or not may_apply(session, change, now):
        return False
    account = session.get(Account, change.account_id, with_for_update=True)
    session.refresh(change, with_for_update=True)
    if not may_apply(session, change, now):
        return False
    reason = _void_reason(session, account, change)
    if reason is None:
        body = json.loads(open_secret(ctx.keyring, SealedSecret(change.kek_id, change.wrapped_dek, change.ciphertext),
                                      f"rsch:{change.id}"))
        try:
            store(session, ctx, account, validate(session, account, body), actor=f"change:{change.id}", now=now)
        except RecoveryError as err:   # CaseStateError `recovery_in_progress` included
            reason = err.code
    if reason is not None:
        close(session, change, "void", reason, "system", now)
        push(session, account.owner_device_id, "recovery_setup_change_void", now)
        return False
    change.state, change.closed_at = "applied", now
    push(session, account.owner_device_id, "recovery_setup_replaced", now)
    return True


def cancel(session: Session, account: Account, change_id, *, actor: str, now: dt.datetime) -> RecoverySetupChange:
    """The owner cancels the pending replacement. Idempotent for a closed one. Raises
    SetupChangeNotFound."""
    session.get(Account, account.id, with_for_update=True)     # first: the apply job holds it while it decides
    change = session.get(RecoverySetupChange, change_id, populate_existing=True) \
        if isinstance(change_id, str) and len(change_id) <= 40 else None
    if change is None or change.account_id != account.id:
        raise SetupChangeNotFound("no such recovery setup change")
    if change.state == "pending":
        close(session, change, "cancelled", "cancelled_by_owner", actor, now)
    return change


def view(change: RecoverySetupChange | None) -> dict | None:
    """What the owner's app is shown of a change (nothing secret)."""
    if change is None:
        return None
    return {"change_id": change.id, "state": change.state, "effective_at": change.effective_at,
            "created_at": change.created_at, "closed_reason": change.closed_reason, **change.summary}


def _cancelled(session, change, reason, now) -> None:
    close(session, change, "cancelled", f"verification_{reason}", "verification", now)
    push(session, session.get(Account, change.account_id).owner_device_id, "recovery_setup_change_void", now)


register_delayed_change(KIND, lambda session, cid: session.get(RecoverySetupChange, cid), APPLY_JOB, _cancelled)
