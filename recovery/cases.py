"""Recovery cases, requester and old-device side: start (with OTP mail), verify the
OTP, resend it, cancel (contest), and the timed steps (`advance`, run by the
`recovery.advance` job and the reconciler). Every service takes an open session (the
caller owns the transaction), a RecoveryContext and `now`; each transition is written
to the case's history and the audit log in the same transaction.

No enumeration: `start` answers identically whether or not the email is registered —
an unknown address gets a decoy case (account NULL) that never verifies and sends no
mail, with the same OTP hashing work.
"""
from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from audit import services as audit
from cosigner.model import Account
from recovery import machine, otp
from recovery.context import RecoveryContext
from recovery.errors import (CaseClosed, CaseNotFound, CaseStateError, InvalidScheme, OtpRejected,
                             RecoveryRateLimited)
from recovery.limits import CHALLENGE_BYTES, OTP_MAX_ATTEMPTS, SEALING_KEY_BYTES
from recovery.model import RecoveryCase, RecoveryHolder, RecoveryResponse, RecoverySetup
from recovery.secrets_box import email_hash, normalize_email, valid_x25519, verification_phrase, seal_to
from workers.jobs import schedule

ADVANCE_JOB = "recovery.advance"


def _audit(session, case, actor, action, now, **details):
    audit.record(session, actor=actor, action=f"recovery.{action}", subject=case.id,
                 details={"account": case.account_id, "state": case.state, **details}, now=now)


def _move(session, case, to, now, *, by="system", reason=None):
    machine.transition(case, to, now, by=by, reason=reason)
    if case.account_id is not None:
        _audit(session, case, by, to, now, **({"reason": reason} if reason else {}))


def _schedule_next(session, case, *, decoy: bool = False) -> None:
    """A durable `recovery.advance` job at the next deadline (unless one is pending).
    Decoy cases get none (`decoy=True`: the same work, for `_decoy_work` to roll back)."""
    from workers.jobs import ScheduledJob
    when = machine.next_due(case)
    if when is None or (case.account_id is None and not decoy):
        return
    exists = session.scalar(select(ScheduledJob.id).where(
        ScheduledJob.kind == ADVANCE_JOB, ScheduledJob.subject == case.id, ScheduledJob.state == "pending",
        ScheduledJob.due_at == when).limit(1))
    if exists is None:
        schedule(session, ADVANCE_JOB, case.id, when)


def get(session: Session, case_id, *, lock: bool = False) -> RecoveryCase:
    if not isinstance(case_id, str) or not 0 < len(case_id) <= 40:
        raise CaseNotFound("no such recovery case")
    stmt = select(RecoveryCase).where(RecoveryCase.id == case_id)
    if lock:
        stmt = stmt.with_for_update()
    case = session.scalar(stmt)
    if case is None:
        raise CaseNotFound("no such recovery case")
    return case


def get_for_requester(session: Session, case_id, device_id: str, *, lock: bool = False) -> RecoveryCase:
    case = get(session, case_id, lock=lock)
    if case.requester_device_id != device_id:
        raise CaseNotFound("no such recovery case")
    return case


def _setup(session, case) -> RecoverySetup | None:
    return session.get(RecoverySetup, case.setup_id) if case.setup_id else None


def start(session: Session, ctx: RecoveryContext, *, device_id: str, email, sealing_key: bytes,
          now: dt.datetime) -> RecoveryCase:
    """Open a case for the calling (new) device. Raises InvalidScheme for a malformed
    email or sealing key (the same for known and unknown addresses)."""
    address = normalize_email(email)
    if address is None:
        raise InvalidScheme("email must be an email address", code="invalid_email")
    if not valid_x25519(sealing_key) or len(sealing_key) != SEALING_KEY_BYTES:
        raise InvalidScheme("sealing_key must be a base64 X25519 public key (32 bytes)", code="invalid_sealing_key")
    hashed = email_hash(ctx.email_key, address)
    setup = session.scalar(select(RecoverySetup).where(RecoverySetup.email_hash == hashed)
                           .order_by(RecoverySetup.created_at.desc()).limit(1))
    issued = otp.issue(now)
    case = RecoveryCase(id="rcase_" + secrets.token_hex(12), account_id=setup.account_id if setup else None,
                        setup_id=setup.id if setup else None, requester_device_id=device_id,
                        sealing_key=sealing_key, email_hash=hashed, state="requested", otp_hash=issued.hash,
                        otp_attempts=0, otp_sent_at=now, otp_expires_at=issued.expires_at,
                        expires_at=now + ctx.case_ttl, challenge=os.urandom(CHALLENGE_BYTES),
                        staff_approvals=[], history=[], created_at=now, updated_at=now)
    session.add(case)
    session.flush()
    if setup is not None:
        _send_code(session, ctx, setup, issued.code, now, case.id)
        _audit(session, case, device_id, "requested", now)
        _schedule_next(session, case)
    else:
        _decoy_work(session, ctx, case, issued.code, now)
    return case


def _decoy_work(session: Session, ctx: RecoveryContext, case: RecoveryCase, code: str, now: dt.datetime) -> None:
    """For an unknown address, the same work a real start does — the sealed mail, the
    audit append, the scheduled step — inside a savepoint that is then rolled back, so
    the answer takes as long and leaves no trace (issue #14, L1)."""
    from cosigner.vault import seal
    decoy_id = "rset_" + secrets.token_hex(12)
    sealed = seal(ctx.keyring, b"decoy@invalid.example", decoy_id + ":email")
    decoy = RecoverySetup(id=decoy_id, email_hash=case.email_hash, email_kek_id=sealed.kek_id,
                          email_wrapped_dek=sealed.wrapped_dek, email_ciphertext=sealed.ciphertext)
    with session.begin_nested() as savepoint:
        _send_code(session, ctx, decoy, code, now, case.id)
        _audit(session, case, case.requester_device_id, "requested", now)
        _schedule_next(session, case, decoy=True)
        savepoint.rollback()


def _send_code(session, ctx, setup, code: str, now, case_id: str) -> None:
    """The OTP mail; it names its case (several cases may be open for one address)."""
    from recovery.notices import mail
    mail(session, ctx, setup, "recovery_otp", f"Your Custos recovery code (case {case_id[-8:]})",
         f"Someone asked to recover your Custos wallet on a new phone.\n\nCode: {code}\nRecovery case: {case_id}\n\n"
         "It expires in 10 minutes. If this was not you, open the app on your phone and cancel the recovery.", now)


def resend(session: Session, ctx: RecoveryContext, case_id, device_id: str, now: dt.datetime) -> RecoveryCase:
    """A new code (the old one stops working). Raises TooSoon inside the cooldown,
    CaseStateError unless the case is `requested`."""
    case = get_for_requester(session, case_id, device_id, lock=True)
    _require_open(session, ctx, case, now)
    if case.state != "requested":
        raise CaseStateError(f"the case is {case.state}; no code is needed")
    issued = otp.issue(now, case.otp_sent_at)
    case.otp_hash, case.otp_sent_at, case.otp_expires_at, case.updated_at = issued.hash, now, issued.expires_at, now
    setup = _setup(session, case)
    if setup is not None:
        _send_code(session, ctx, setup, issued.code, now, case.id)
    return case


@dataclass(frozen=True)
class OtpOutcome:
    case: RecoveryCase
    ok: bool
    attempts_left: int
    expired: bool = False


def verify_otp(session: Session, ctx: RecoveryContext, case_id, device_id: str, code, now: dt.datetime) -> OtpOutcome:
    """Check the code. Right: otp_verified → collecting (delay starts, everyone told).
    Wrong: one attempt used; the fifth wrong code fails the case. Returns the outcome
    (the caller commits it, then reports a wrong code as an error).

    Every evaluation is paid for before the hash is checked: one guess from the email's
    and the account's budgets (recovery.budget; during their cool-down RecoveryRateLimited
    with `retry_after`, nothing evaluated, the same for decoy cases) and one of the case's
    attempts, taken by a conditional UPDATE so concurrent guesses can never evaluate more
    codes than attempts exist (SQLite has no row locks). An expired code is answered
    without hashing (its expiry is no secret) and costs nothing."""
    case = get_for_requester(session, case_id, device_id, lock=True)
    _require_open(session, ctx, case, now)
    if case.state != "requested":
        raise CaseStateError(f"the case is {case.state}; the code was already accepted",
                             code="otp_already_verified")
    if case.otp_expires_at is None or now >= case.otp_expires_at:
        return OtpOutcome(case, False, otp.attempts_left(case.otp_attempts), expired=True)
    keys = budget_keys(case)
    wait = ctx.guesses.reserve(session, keys, now)
    if wait is not None:
        raise RecoveryRateLimited("too many wrong codes for this address; wait before trying again",
                                  code="otp_budget_exhausted", details={"retry_after": wait})
    taken = session.execute(update(RecoveryCase).where(
        RecoveryCase.id == case.id, RecoveryCase.state == "requested", RecoveryCase.otp_hash.is_not(None),
        RecoveryCase.otp_attempts < OTP_MAX_ATTEMPTS).values(otp_attempts=RecoveryCase.otp_attempts + 1))
    session.refresh(case)
    if taken.rowcount != 1:
        raise CaseClosed(f"this recovery case is {case.state}", details={"state": case.state})
    right = otp.matches(case.otp_hash, code) and case.account_id is not None
    case.updated_at = now
    if right:
        case.verified_by, case.otp_hash = "otp", None
        ctx.guesses.clear(session, keys)
        _move(session, case, "otp_verified", now, by=device_id)
        begin_collecting(session, ctx, case, now)
        return OtpOutcome(case, True, otp.attempts_left(case.otp_attempts))
    if otp.attempts_left(case.otp_attempts) == 0:
        case.otp_hash = None
        _move(session, case, "failed", now, by=device_id, reason="too_many_wrong_codes")
    return OtpOutcome(case, False, otp.attempts_left(case.otp_attempts))


def budget_keys(case: RecoveryCase) -> list[str]:
    from recovery.budget import keys_for
    return keys_for(case.email_hash, case.account_id)


def begin_collecting(session: Session, ctx: RecoveryContext, case: RecoveryCase, now: dt.datetime) -> None:
    """otp_verified → collecting: the security delay starts; the old devices, the holders
    and the email are told (push + system message with the case id, the requester's
    sealing key and the verification phrase)."""
    import base64
    from recovery.notices import mail, push, system_message
    _move(session, case, "collecting", now)
    case.delay_ends_at = now + ctx.delay
    case.next_reminder_at = now + ctx.reminder_every
    account = session.get(Account, case.account_id)
    note = {"type": "recovery_started", "case_id": case.id,
            "sealing_key": base64.b64encode(case.sealing_key).decode(),
            "verification_phrase": verification_phrase(case.id, case.sealing_key),
            "delay_ends_at": case.delay_ends_at.isoformat()}
    push(session, account.owner_device_id, "recovery_started", now)
    system_message(session, ctx, account.owner_device_id, {**note, "role": "owner"}, now)
    for holder in session.scalars(select(RecoveryHolder).where(RecoveryHolder.setup_id == case.setup_id,
                                                               RecoveryHolder.kind == "device")):
        if holder.device_id != case.requester_device_id:
            push(session, holder.device_id, "recovery_request", now)
            system_message(session, ctx, holder.device_id, {**note, "role": "holder", "holder_id": holder.id}, now)
    mail(session, ctx, _setup(session, case), "recovery_started", "A Custos recovery has started",
         f"A recovery of your wallet was confirmed with the emailed code. Unless it is cancelled from your "
         f"phone, the operator's share is released after {case.delay_ends_at:%Y-%m-%d %H:%M} UTC.", now)
    advance(session, ctx, case.id, now)


def enough_shares(session: Session, case: RecoveryCase) -> bool:
    """Whether the sealed shares received plus the operator's reach the scheme."""
    from recovery import shares
    setup = _setup(session, case)
    if setup is None:
        return False
    holders = {h.id: h for h in session.scalars(select(RecoveryHolder).where(RecoveryHolder.setup_id == setup.id))}
    have = {(h.group_index, h.member_index) for h in holders.values() if h.kind == "operator"}
    for r in session.scalars(select(RecoveryResponse).where(RecoveryResponse.case_id == case.id,
                                                            RecoveryResponse.sealed.is_not(None))):
        h = holders.get(r.holder_id)
        if h is not None:
            have.add((h.group_index, h.member_index))
    return shares.recoverable(shares.parse_scheme(setup.scheme), have)


def advance(session: Session, ctx: RecoveryContext, case_id: str, now: dt.datetime) -> str | None:
    """Run every timed step that is due at `now` (expire, → waiting, release, remind)
    and schedule the next one. Idempotent: a step that is not due does nothing.
    Returns the case's state."""
    case = get(session, case_id, lock=True)
    if case.state in machine.OPEN_STATES and case.account_id is not None and _setup(session, case) is None:
        _move(session, case, "cancelled", now, reason="setup_replaced")   # nothing left to release
        from recovery.notices import push
        push(session, case.requester_device_id, "recovery_cancelled", now)
    for _ in range(4):
        step = machine.due_step(case, now, enough_shares(session, case) if case.state == "collecting" else False)
        if step is None:
            break
        if step == "expire":
            _move(session, case, "expired", now, reason="case_ttl")
            if case.account_id:
                from recovery.notices import push
                push(session, case.requester_device_id, "recovery_expired", now)
        elif step == "to_waiting":
            _move(session, case, "waiting", now)
        elif step == "release":
            release(session, ctx, case, now)
        elif step == "remind":
            _remind(session, ctx, case, now)
    _schedule_next(session, case)
    return case.state


def release(session: Session, ctx: RecoveryContext, case: RecoveryCase, now: dt.datetime, *,
            by: str = "system", early: bool = False) -> None:
    """waiting → released: seal the operator's share to the requester's key. The share
    is decrypted and re-sealed here and nowhere else."""
    from recovery.notices import push
    from recovery.setup import operator_share
    setup = _setup(session, case)
    if setup is None:
        raise CaseStateError("the account's recovery setup was replaced; this case cannot release a share",
                             code="setup_replaced")
    machine.transition(case, "released", now, by=by)  # refuses before anything is decrypted
    plain = operator_share(ctx, setup)
    try:
        case.released_share = seal_to(case.sealing_key, plain)
    finally:
        del plain
    case.released_at, case.early_release = now, early
    _audit(session, case, by, "released", now, early=early)
    push(session, case.requester_device_id, "recovery_released", now)


def _remind(session, ctx, case, now) -> None:
    from recovery.notices import mail, push
    account = session.get(Account, case.account_id)
    push(session, account.owner_device_id, "recovery_reminder", now)
    mail(session, ctx, _setup(session, case), "recovery_reminder", "Reminder: a Custos recovery is in progress",
         "A recovery of your wallet is in progress. If this is not you, cancel it from your phone now.", now)
    case.next_reminder_at = now + ctx.reminder_every
    _audit(session, case, "system", "reminded", now)


def _require_open(session, ctx, case, now) -> None:
    if case.state in machine.OPEN_STATES and now >= case.expires_at:
        advance(session, ctx, case.id, now)
    if case.state not in machine.OPEN_STATES:
        raise CaseClosed(f"this recovery case is {case.state}", details={"state": case.state})


def cancel(session: Session, ctx: RecoveryContext, case_id, device_id: str, *, freeze: bool,
           now: dt.datetime) -> RecoveryCase:
    """An old device (the account's owner) contests the case: cancelled, nothing is
    released. With `freeze`, the freeze request is audited and handed to the policy
    engine's freeze when it exists. The requester may withdraw its own case instead
    (`withdraw`). Idempotent for an already cancelled case."""
    case = get(session, case_id, lock=True)
    account = session.get(Account, case.account_id) if case.account_id else None
    if case.requester_device_id == device_id and (account is None or account.owner_device_id != device_id):
        return withdraw(session, ctx, case, device_id, now)
    if account is None or account.owner_device_id != device_id:
        raise CaseNotFound("no such recovery case")
    if case.state == "cancelled":
        return case
    if case.state not in machine.OPEN_STATES:
        raise CaseClosed(f"this recovery case is {case.state}", details={"state": case.state})
    _move(session, case, "cancelled", now, by=device_id, reason="contested_by_owner")
    _audit(session, case, device_id, "contested", now, freeze=freeze)
    from recovery.notices import push
    push(session, case.requester_device_id, "recovery_cancelled", now)
    if freeze:
        request_freeze(session, account, device_id, now)
    return case


def withdraw(session: Session, ctx: RecoveryContext, case: RecoveryCase, device_id: str,
             now: dt.datetime) -> RecoveryCase:
    """The requester gives up its own case: cancelled (`withdrawn_by_requester`), nothing
    released; audited, and the owner and the holders who were asked are told (push and a
    system message). A decoy case closes the same way, silently. Idempotent."""
    if case.state == "cancelled":
        return case
    if case.state not in machine.OPEN_STATES:
        raise CaseClosed(f"this recovery case is {case.state}", details={"state": case.state})
    asked = case.state in machine.CONTACT_STATES
    case.otp_hash = None
    _move(session, case, "cancelled", now, by=device_id, reason="withdrawn_by_requester")
    if case.account_id is None:
        return case
    _audit(session, case, device_id, "withdrawn", now)
    from recovery.notices import push, system_message
    note = {"type": "recovery_withdrawn", "case_id": case.id}
    account = session.get(Account, case.account_id)
    push(session, account.owner_device_id, "recovery_cancelled", now)
    if asked:
        for holder in session.scalars(select(RecoveryHolder).where(RecoveryHolder.setup_id == case.setup_id,
                                                                   RecoveryHolder.kind == "device")):
            if holder.device_id != device_id:
                system_message(session, ctx, holder.device_id, {**note, "holder_id": holder.id}, now)
    return case


def request_freeze(session: Session, account: Account, actor: str, now: dt.datetime) -> bool:
    """Record the freeze request and apply it through the policy engine's
    `cosigner.policy_service.freeze` when that exists. Returns whether it was applied."""
    audit.record(session, actor=actor, action="recovery.freeze_requested", subject=account.id, details={}, now=now)
    try:
        from cosigner import policy_service
    except ImportError:
        return False
    freeze = getattr(policy_service, "freeze", None)
    if freeze is None:
        return False
    from messaging.notify import notify
    freeze(session, account, by="owner", actor=actor, frozen=True, now=now, loosen_delay=dt.timedelta(hours=24),
           notify=notify)
    return True
