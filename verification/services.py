"""Verification requests: open one for a subject, confirm or cancel it (the e-mailed
page's tokens or a TOTP code), expire it. Generic over subjects: each kind registers
`on_confirm(session, ctx, request, now) -> str` and `on_cancel(session, ctx, request,
reason, now) -> None` (verification.subjects registers spend, policy_change, channel).

Lock order: the account row first (cosigner.policy_service.lock_account), then the
request row — like every other path that changes an account's subjects. `ctx` is a
CosignerContext (`.verification` carries mailer, link base URL and VERIFY_TTL).
"""
from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import services as audit
from cosigner.model import Account
from verification import channels, privileged, tokens
from verification.errors import ChannelMissing, CodeRejected, LinkInvalid, RequestClosed, RequestNotFound
from verification.limits import TOTP_MAX_ATTEMPTS
from verification.model import VerificationRequest
from workers.jobs import schedule


@dataclass(frozen=True)
class Kind:
    on_confirm: Callable
    on_cancel: Callable


KINDS: dict[str, Kind] = {}


def register_kind(name: str, on_confirm: Callable, on_cancel: Callable) -> None:
    """Register a subject kind (e.g. the inheritance package's plan changes)."""
    KINDS[name] = Kind(on_confirm, on_cancel)


def register_delayed_change(name: str, load: Callable, apply_job: str, on_cancelled: Callable) -> None:
    """Register the kind of a delayed change that also waits for the confirmation (a row
    with `state` and `effective_at`, found by `load(session, id)`): confirmed once its delay
    is over, its `apply_job` is scheduled for now (before, the job already scheduled at the
    end of the delay applies it); cancelled on the channel while still pending,
    `on_cancelled(session, change, reason, now)` closes it."""
    def confirmed(session, ctx, req, now) -> str:
        change = load(session, req.subject_id)
        if change is not None and change.state == "pending" and change.effective_at <= now:
            schedule(session, apply_job, change.id, now)
        return "confirmed"

    def cancelled(session, ctx, req, reason, now) -> None:
        change = load(session, req.subject_id)
        if change is not None and change.state == "pending":
            on_cancelled(session, change, reason, now)
    register_kind(name, confirmed, cancelled)


def _kinds() -> dict[str, Kind]:
    import verification.subjects  # noqa: F401  (registers the built-in kinds)
    return KINDS


def _lock(session: Session, account_id: str) -> None:
    from cosigner.policy_service import lock_account
    lock_account(session, account_id)


def pending_for(session: Session, subject_kind: str, subject_id: str) -> VerificationRequest | None:
    return session.scalar(select(VerificationRequest).where(
        VerificationRequest.subject_kind == subject_kind, VerificationRequest.subject_id == subject_id,
        VerificationRequest.state == "pending").order_by(VerificationRequest.created_at.desc()).limit(1))


def satisfied(session: Session, subject_kind: str, subject_id: str, channel: str = "either") -> bool:
    """True when a request for the subject was confirmed on a channel `channel` allows."""
    kinds = channels.kinds_for(channel)
    return any(r.confirmed_via in kinds for r in session.scalars(select(VerificationRequest).where(
        VerificationRequest.subject_kind == subject_kind, VerificationRequest.subject_id == subject_id,
        VerificationRequest.state == "confirmed")))


def outstanding(session: Session, subject_kind: str, subject_id: str) -> bool:
    """True when a confirmation was asked for the subject and none was given (yet)."""
    rows = list(session.scalars(select(VerificationRequest.state).where(
        VerificationRequest.subject_kind == subject_kind, VerificationRequest.subject_id == subject_id)))
    return bool(rows) and "confirmed" not in rows


def require(session: Session, account: Account, action: str, subject_kind: str, subject_id: str, summary: dict,
            now: dt.datetime, *, ctx, channel: str = "either") -> VerificationRequest:
    """Open a verification request for the subject (idempotent: a pending one is
    returned). `summary` = {"title", "account", "rows": [[label, value], …]} is all the
    page shows. Mails the confirm and cancel links when an e-mail channel may confirm,
    pushes the owner's devices, and schedules `verification.expiry` at now + VERIFY_TTL.
    Raises ChannelMissing when no channel of `channel` is active."""
    assert privileged.rule(action).oob, f"{action} needs no out-of-band confirmation"
    existing = pending_for(session, subject_kind, subject_id)
    if existing is not None:
        return existing
    usable = [c for c in channels.usable(session, account.id) if c.kind in channels.kinds_for(channel)]
    if not usable:
        raise ChannelMissing("no verification channel can confirm this", details={"channel": channel})
    vctx = ctx.verification
    req = VerificationRequest(id="vreq_" + secrets.token_hex(12), account_id=account.id, action=action,
                              subject_kind=subject_kind, subject_id=subject_id, channel=channel, state="pending",
                              summary=summary, totp_attempts=0, expires_at=now + vctx.ttl, created_at=now)
    emails = [c for c in usable if c.kind == "email"]
    if emails:
        view, confirm, cancel = tokens.new_token(), tokens.new_token(), tokens.new_token()
        req.view_digest, req.confirm_digest, req.cancel_digest = (tokens.digest(view), tokens.digest(confirm),
                                                                  tokens.digest(cancel))
        body = "\n".join([f"Account {summary.get('account')}: {summary.get('title')}", ""]
                         + [f"{label}: {value}" for label, value in summary.get("rows", [])]
                         + ["", f"Confirm: {vctx.base_url}/verify?view_token={view}&token={confirm}",
                            f"Cancel:  {vctx.base_url}/verify?view_token={view}&token={cancel}", "",
                            f"The links work once and expire in {int(vctx.ttl.total_seconds() // 60)} minutes. "
                            "If you did not ask for this, use Cancel."])
        for c in emails:
            channels.mail_to(session, ctx, c, "verification.request", f"Confirm: {summary.get('title')}", body, now)
    session.add(req)
    session.flush()
    schedule(session, "verification.expiry", req.id, req.expires_at)
    ctx.notify(session, account.owner_device_id, "verification_requested", now)
    audit.record(session, actor="system", action="verification.requested", subject=subject_id,
                 details={"request": req.id, "action": action, "channel": channel}, now=now)
    return req


def protect(session: Session, ctx, account: Account, action: str, subject_kind: str, subject_id: str,
            summary: dict, now: dt.datetime) -> VerificationRequest | None:
    """For the delayed privileged actions: ask for a confirmation when the table says the
    action needs one and the account has an active channel; None otherwise."""
    if not privileged.rule(action).oob or not channels.has_usable(session, account.id):
        return None
    if ctx is None or getattr(ctx, "verification", None) is None:   # fail closed: never skip the second channel
        raise RuntimeError(f"{action} on an account with a verification channel needs a verification context")
    return require(session, account, action, subject_kind, subject_id, summary, now, ctx=ctx)


def withdraw(session: Session, subject_kind: str, subject_id: str, now: dt.datetime, reason: str = "withdrawn") -> None:
    """Close the subject's pending request without running its callbacks (the subject
    was decided another way: denied, cancelled by the owner, superseded). Its links stop
    working at once."""
    for req in session.scalars(select(VerificationRequest).where(
            VerificationRequest.subject_kind == subject_kind, VerificationRequest.subject_id == subject_id,
            VerificationRequest.state == "pending")):
        _close(req, "withdrawn", now, reason)


def _close(req: VerificationRequest, state: str, now: dt.datetime, reason: str | None = None) -> None:
    req.state, req.closed_at, req.closed_reason = state, now, reason
    req.view_digest = req.confirm_digest = req.cancel_digest = None     # every link dies with it


# -- the page ----------------------------------------------------------------------------------
def by_link(session: Session, view_token, action_token, now: dt.datetime) -> tuple[VerificationRequest, str]:
    """The pending, unexpired request a link names and what its action token does
    ("confirm" or "cancel"). Raises LinkInvalid for anything else (unknown, used,
    expired, malformed: the page tells them apart to no one)."""
    if not tokens.well_formed(view_token) or not tokens.well_formed(action_token):
        raise LinkInvalid("this link is not valid")
    req = session.scalar(select(VerificationRequest).where(VerificationRequest.view_digest == tokens.digest(view_token)))
    if req is None or req.state != "pending" or now > req.expires_at:
        raise LinkInvalid("this link is not valid")
    d = tokens.digest(action_token)
    if secrets.compare_digest(d, req.confirm_digest or ""):
        return req, "confirm"
    if secrets.compare_digest(d, req.cancel_digest or ""):
        return req, "cancel"
    raise LinkInvalid("this link is not valid")


def decide_by_link(session: Session, ctx, view_token, action_token, now: dt.datetime) -> tuple[str, str]:
    """Use a link: confirm or cancel its request (single use: every token of the request
    dies). Returns (what the token did, the subject's outcome). Raises LinkInvalid."""
    req, what = by_link(session, view_token, action_token, now)
    req = _relock(session, req, now)
    if req is None:
        raise LinkInvalid("this link is not valid")
    if what == "confirm":
        return what, _confirm(session, ctx, req, "email", now)
    return what, _cancel(session, ctx, req, "cancelled_by_link", now)


def _relock(session: Session, req: VerificationRequest, now: dt.datetime) -> VerificationRequest | None:
    _lock(session, req.account_id)
    req = session.scalar(select(VerificationRequest).where(VerificationRequest.id == req.id).with_for_update()
                         .execution_options(populate_existing=True))
    return req if req.state == "pending" and now <= req.expires_at else None


def _confirm(session: Session, ctx, req: VerificationRequest, via: str, now: dt.datetime) -> str:
    _close(req, "confirmed", now)
    req.confirmed_via = via
    audit.record(session, actor=f"verification:{via}", action="verification.confirmed", subject=req.subject_id,
                 details={"request": req.id, "action": req.action}, now=now)
    return _kinds()[req.subject_kind].on_confirm(session, ctx, req, now)


def _cancel(session: Session, ctx, req: VerificationRequest, reason: str, now: dt.datetime) -> str:
    _close(req, "cancelled" if reason != "expired" else "expired", now, reason)
    audit.record(session, actor="system" if reason == "expired" else "verification", action="verification.cancelled",
                 subject=req.subject_id, details={"request": req.id, "action": req.action, "reason": reason}, now=now)
    _kinds()[req.subject_kind].on_cancel(session, ctx, req, reason, now)
    account = session.get(Account, req.account_id)
    ctx.notify(session, account.owner_device_id, "verification_cancelled", now)
    for c in channels.usable(session, account.id, "email"):
        channels.mail_to(session, ctx, c, "verification.cancelled", f"Cancelled: {req.summary.get('title')}",
                         f"Account {account.name}: {req.summary.get('title')} was cancelled ({reason}).", now)
    return "cancelled"


# -- TOTP ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CodeOutcome:
    ok: bool
    request: VerificationRequest
    outcome: str = ""                  # the subject's outcome when confirmed / cancelled
    attempts_left: int = 0


def confirm_totp(session: Session, ctx, request_id: str, owner_device_id: str, code, now: dt.datetime) -> CodeOutcome:
    """Confirm a pending request with a TOTP code from the owner. A code counts once (the
    channel remembers its last used time step); a wrong or reused code uses one of
    TOTP_MAX_ATTEMPTS and the last one cancels the request and its subject (notified).
    Raises RequestNotFound (not the owner's), RequestClosed, ChannelMissing (the request
    does not allow TOTP or no authenticator is active). The caller commits either way."""
    req = session.get(VerificationRequest, request_id) if isinstance(request_id, str) else None
    account = session.get(Account, req.account_id) if req else None
    if req is None or account is None or account.owner_device_id != owner_device_id:
        raise RequestNotFound("no such verification request")
    locked = _relock(session, req, now)
    if locked is None:
        raise RequestClosed("this verification is no longer open", details={"state": req.state})
    if "totp" not in channels.kinds_for(locked.channel) or not channels.usable(session, account.id, "totp"):
        raise ChannelMissing("this verification cannot be confirmed with an authenticator code",
                             details={"channel": locked.channel})
    for chan in channels.usable(session, account.id, "totp"):
        step = channels.totp_step(ctx, chan, code, now)
        if step is not None:
            chan.last_totp_step = step
            return CodeOutcome(True, locked, _confirm(session, ctx, locked, "totp", now))
    locked.totp_attempts += 1
    left = max(0, TOTP_MAX_ATTEMPTS - locked.totp_attempts)
    if left == 0:
        return CodeOutcome(False, locked, _cancel(session, ctx, locked, "too_many_codes", now))
    return CodeOutcome(False, locked, "", left)


def raise_for(outcome: CodeOutcome) -> None:
    """After committing: a refused code as an error (the caller reports it)."""
    if outcome.outcome == "cancelled":
        raise RequestClosed("too many wrong codes: the verification and what it protected were cancelled",
                            code="verification_cancelled", details={"state": "cancelled"})
    raise CodeRejected("wrong or already used code", details={"attempts_left": outcome.attempts_left})


def expire(session: Session, ctx, request_id: str, now: dt.datetime) -> bool:
    """Job body (`verification.expiry`): a request still pending at its deadline is
    expired and its subject cancelled (coins freed, owner told). Idempotent."""
    req = session.get(VerificationRequest, request_id)
    if req is None or req.state != "pending" or req.expires_at > now:
        return False
    _lock(session, req.account_id)
    req = session.scalar(select(VerificationRequest).where(VerificationRequest.id == request_id).with_for_update()
                         .execution_options(populate_existing=True))
    if req.state != "pending":
        return False
    _cancel(session, ctx, req, "expired", now)
    return True


def requests_of(session: Session, account_id: str, states=("pending",)) -> list[VerificationRequest]:
    return list(session.scalars(select(VerificationRequest).where(
        VerificationRequest.account_id == account_id, VerificationRequest.state.in_(states))
        .order_by(VerificationRequest.created_at.desc())))
