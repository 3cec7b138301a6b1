"""The owner's verification channels: an e-mail address (confirmed by a mailed 6-digit
code, argon2id-hashed like the recovery OTP) and a TOTP authenticator (confirmed by a
first valid code). Both are sealed at rest with the master key (cosigner.vault).

The account's first channel counts as soon as its code is confirmed (`channel.add_first`).
Adding another, replacing or removing one is a loosening (`channel.add`,
`channel.replace`, `channel.remove` in verification.privileged): it waits out the change
delay and needs a confirmation on the channels in force, which are told; the `verification.channel_apply`
job (or the confirmation, when later) applies it. Every function runs in the caller's
transaction; `ctx` is a CosignerContext (its `.verification` carries the mailer).
"""
from __future__ import annotations

import datetime as dt
import secrets

import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import services as audit
from cosigner.model import Account
from cosigner.vault import SealedSecret, open_secret, seal
from recovery import otp
from recovery.mailer import Mail
from recovery.secrets_box import email_hash, normalize_email
from verification import privileged
from verification.errors import ChannelMissing, ChannelStateError, InvalidChannel
from verification.limits import CHANNEL_KINDS, CODE_MAX_ATTEMPTS, CODE_TTL, TOTP_ISSUER
from verification.model import USABLE_STATES, VerificationChannel
from workers.jobs import schedule


def usable(session: Session, account_id: str, kind: str | None = None) -> list[VerificationChannel]:
    """The channels that can confirm now (active, or active until a pending removal)."""
    stmt = select(VerificationChannel).where(VerificationChannel.account_id == account_id,
                                             VerificationChannel.state.in_(USABLE_STATES))
    if kind:
        stmt = stmt.where(VerificationChannel.kind == kind)
    return list(session.scalars(stmt.order_by(VerificationChannel.created_at)))


def kinds_for(choice: str) -> tuple[str, ...]:
    return CHANNEL_KINDS if choice == "either" else (choice,)


def has_usable(session: Session, account_id: str, choice: str = "either") -> bool:
    return any(c.kind in kinds_for(choice) for c in usable(session, account_id))


def require_usable(session: Session, account_id: str, choice: str) -> None:
    """Raise ChannelMissing unless a channel of `choice` can confirm (a `verify` rule
    naming a channel the account does not have would refuse every large spend)."""
    if not has_usable(session, account_id, choice):
        raise ChannelMissing(f"register and confirm a {choice if choice != 'either' else 'verification'} "
                             "channel first", details={"channel": choice})


def secret_of(ctx, channel: VerificationChannel) -> str:
    """The e-mail address or TOTP secret, decrypted (never logged, never returned)."""
    return open_secret(ctx.keyring, SealedSecret(channel.kek_id, channel.wrapped_dek, channel.sealed),
                       f"vchan:{channel.id}").decode()


def mail_to(session: Session, ctx, channel: VerificationChannel, kind: str, subject: str, body: str,
            now: dt.datetime) -> str:
    return ctx.verification.mailer.send(session, Mail(secret_of(ctx, channel), subject, body),
                                        to_hash=channel.email_hash, kind=kind, now=now)


def _new(session: Session, ctx, account: Account, kind: str, secret: str, now: dt.datetime,
         **fields) -> VerificationChannel:
    row_id = "vchan_" + secrets.token_hex(12)
    sealed = seal(ctx.keyring, secret.encode(), f"vchan:{row_id}")
    row = VerificationChannel(id=row_id, account_id=account.id, kind=kind, state="pending", kek_id=sealed.kek_id,
                              wrapped_dek=sealed.wrapped_dek, sealed=sealed.ciphertext, code_attempts=0,
                              last_totp_step=0, created_at=now, **fields)
    session.add(row)
    session.flush()
    return row


def _retire_pending(session: Session, account_id: str, kind: str, now: dt.datetime) -> None:
    for row in session.scalars(select(VerificationChannel).where(
            VerificationChannel.account_id == account_id, VerificationChannel.kind == kind,
            VerificationChannel.state.in_(("pending", "waiting")))):
        row.state, row.retired_at, row.code_hash = "retired", now, None


def set_email(session: Session, ctx, account: Account, email, now: dt.datetime) -> VerificationChannel:
    """Start registering `email`: a pending channel and a 6-digit code mailed to the
    address. A second call replaces a pending (not yet confirmed) address. Raises
    InvalidChannel (invalid_email) with nothing stored."""
    address = normalize_email(email)
    if address is None:
        raise InvalidChannel("email must be an e-mail address", code="invalid_email")
    _retire_pending(session, account.id, "email", now)
    issued = otp.issue(now)
    row = _new(session, ctx, account, "email", address, now,
               email_hash=email_hash(ctx.verification.email_key, address), code_hash=issued.hash,
               code_expires_at=now + CODE_TTL)
    mail_to(session, ctx, row, "verification.email_code", "Your Custos verification code",
            f"Your code to confirm this address for the account {account.name!r} is {issued.code}. "
            f"It expires in {int(CODE_TTL.total_seconds() // 60)} minutes.", now)
    audit.record(session, actor=account.owner_device_id, action="verification.email_pending", subject=account.id,
                 details={"channel": row.id}, now=now)
    return row


def confirm_email(session: Session, ctx, account: Account, code, now: dt.datetime) -> tuple[VerificationChannel, int]:
    """Check the mailed code. Returns (channel, attempts_left): on success the channel is
    confirmed (active, or waiting when it replaces an active address); a wrong or expired
    code uses an attempt and the last one drops the pending address (state retired).
    Raises ChannelStateError (no_pending_channel) when nothing waits for a code."""
    row = _pending(session, account.id, "email")
    if row.code_expires_at is None or now > row.code_expires_at or not otp.matches(row.code_hash, code):
        row.code_attempts += 1
        if row.code_attempts >= CODE_MAX_ATTEMPTS:
            row.state, row.retired_at, row.code_hash = "retired", now, None
        return row, max(0, CODE_MAX_ATTEMPTS - row.code_attempts)
    row.code_hash = None
    _confirmed(session, ctx, account, row, now)
    return row, CODE_MAX_ATTEMPTS - row.code_attempts


def enroll_totp(session: Session, ctx, account: Account, now: dt.datetime) -> tuple[VerificationChannel, str]:
    """A new authenticator secret (pending until a first valid code). Returns (channel,
    otpauth:// URI): the URI is shown once and never stored in plaintext."""
    _retire_pending(session, account.id, "totp", now)
    secret = pyotp.random_base32()
    row = _new(session, ctx, account, "totp", secret, now)
    uri = pyotp.TOTP(secret).provisioning_uri(name=account.name, issuer_name=TOTP_ISSUER)
    audit.record(session, actor=account.owner_device_id, action="verification.totp_pending", subject=account.id,
                 details={"channel": row.id}, now=now)
    return row, uri


def confirm_totp(session: Session, ctx, account: Account, code, now: dt.datetime) -> VerificationChannel | None:
    """Confirm a pending authenticator with a first valid code; None for a wrong code
    (nothing else changes). Raises ChannelStateError when nothing is pending."""
    row = _pending(session, account.id, "totp")
    step = totp_step(ctx, row, code, now)
    if step is None:
        return None
    row.last_totp_step = step
    _confirmed(session, ctx, account, row, now)
    return row


def totp_step(ctx, channel: VerificationChannel, code, now: dt.datetime) -> int | None:
    """The time step `code` is valid for, later than the channel's last used one (a code
    counts once), within ±1 step of `now`; None otherwise."""
    from admin.credentials import totp_step as step_of
    return step_of(secret_of(ctx, channel), code if isinstance(code, str) else "", now, channel.last_totp_step)


def _pending(session: Session, account_id: str, kind: str) -> VerificationChannel:
    row = session.scalar(select(VerificationChannel).where(
        VerificationChannel.account_id == account_id, VerificationChannel.kind == kind,
        VerificationChannel.state == "pending").order_by(VerificationChannel.created_at.desc()).limit(1)
        .with_for_update())
    if row is None:
        raise ChannelStateError(f"no {kind} channel is waiting for a code", code="no_pending_channel")
    return row


def _confirmed(session: Session, ctx, account: Account, row: VerificationChannel, now: dt.datetime) -> None:
    """A channel whose code was confirmed: active at once when it is the first of its
    kind, else a `channel.replace` waiting for the delay and the channels in force."""
    from verification import services
    from cosigner.policy_service import lock_account
    lock_account(session, account.id)
    row.confirmed_at = now
    in_force = usable(session, account.id)
    action = "channel.replace" if any(c.kind == row.kind for c in in_force) else \
        "channel.add" if in_force else "channel.add_first"
    rule = privileged.rule(action)
    if not (rule.delay or rule.oob):
        row.state = "active"
        audit.record(session, actor=account.owner_device_id, action="verification.channel_added",
                     subject=account.id, details={"channel": row.id, "kind": row.kind}, now=now)
        return
    title = f"{'Replace' if action == 'channel.replace' else 'Add'} the verification {_label(row.kind)}"
    _wait(session, ctx, account, row, action, title, now)
    row.state = "waiting"
    services.protect(session, ctx, account, action, "channel", row.id, _summary(account, title, row), now)


def remove(session: Session, ctx, account: Account, kind: str, now: dt.datetime) -> VerificationChannel:
    """Ask to remove the active channel of `kind` (`channel.remove`): it stays usable
    until the delay has passed and the removal was confirmed out of band. Raises
    InvalidChannel, ChannelMissing."""
    from verification import services
    from cosigner.policy_service import lock_account
    if kind not in CHANNEL_KINDS:
        raise InvalidChannel("kind must be email or totp", code="invalid_channel")
    lock_account(session, account.id)
    rows = [c for c in usable(session, account.id, kind) if c.state == "active"]
    if not rows:
        raise ChannelMissing(f"no active {kind} channel", details={"channel": kind})
    row = rows[0]
    title = f"Remove the verification {_label(kind)}"
    _wait(session, ctx, account, row, "channel.remove", title, now)
    row.state = "removing"
    services.protect(session, ctx, account, "channel.remove", "channel", row.id, _summary(account, title, row), now)
    return row


def _wait(session: Session, ctx, account: Account, row: VerificationChannel, action: str, title: str,
          now: dt.datetime) -> None:
    rule = privileged.rule(action)
    row.effective_at = now + (ctx.verification.change_delay if rule.delay else dt.timedelta(0))
    schedule(session, "verification.channel_apply", row.id, row.effective_at)
    ctx.notify(session, account.owner_device_id, "verification_channel_change", now)
    audit.record(session, actor=account.owner_device_id, action=f"verification.{action.split('.')[1]}_pending",
                 subject=account.id, details={"channel": row.id, "effective_at": row.effective_at.isoformat()}, now=now)


def _label(kind: str) -> str:
    return "e-mail address" if kind == "email" else "authenticator app"


def _summary(account: Account, title: str, row: VerificationChannel) -> dict:
    return {"title": title, "account": account.name,
            "rows": [["Takes effect", row.effective_at.strftime("%Y-%m-%d %H:%M UTC")]]}


def apply_change(session: Session, channel_id: str, now: dt.datetime) -> bool:
    """Job body (`verification.channel_apply`) and confirmation hook: a waiting channel
    becomes active (retiring the one it replaces), a removing one is retired — once its
    time has come and, when a confirmation was asked, it was given. Idempotent."""
    from verification import services
    row = session.get(VerificationChannel, channel_id)
    if row is None or row.state not in ("waiting", "removing") or row.effective_at > now:
        return False
    from cosigner.policy_service import lock_account
    lock_account(session, row.account_id)
    session.refresh(row)               # what an abandon or another apply committed while we waited
    if row.state not in ("waiting", "removing") or services.outstanding(session, "channel", row.id):
        return False
    if row.state == "removing":
        row.state, row.retired_at = "retired", now
    else:
        for old in usable(session, row.account_id, row.kind):
            old.state, old.retired_at = "retired", now
        row.state = "active"
    audit.record(session, actor="system", action="verification.channel_changed", subject=row.account_id,
                 details={"channel": row.id, "state": row.state}, now=now)
    return True


def abandon_change(session: Session, channel_id: str, now: dt.datetime) -> None:
    """The change was cancelled on the second channel (or its confirmation expired): a
    waiting replacement is retired, a removing channel is active again."""
    row = session.get(VerificationChannel, channel_id)
    if row is None:
        return
    if row.state == "waiting":
        row.state, row.retired_at = "retired", now
    elif row.state == "removing":
        row.state, row.effective_at = "active", None
