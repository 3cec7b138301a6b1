"""Staff use cases: create/disable/reset, password + TOTP login with lockout, TOTP
enrollment, re-authentication, console sessions and scoped API tokens.

Every function takes an open session and `now`; the caller owns the transaction. Each
change is recorded in the audit log with the staff id as actor (`staff:<id>`), or the
operator running the CLI (`cli:<user>`). Nothing here logs or returns a secret, except
`create_token`, which returns the new token once.
"""
from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from admin import credentials as cred
from admin.errors import Forbidden, InvalidStaffInput, ReauthRequired, StaffExists, StaffNotFound, TokenNotFound
from admin.limits import (LOCKOUT, LOGIN_STAGE_TIMEOUT, MAX_FAILED_LOGINS, MIN_PASSWORD_LENGTH, SESSION_IDLE_TIMEOUT,
                          SESSION_MAX_AGE, TOKEN_DEFAULT_TTL, TOKEN_MAX_TTL, TOKEN_TOUCH_EVERY)
from admin.model import StaffMember, StaffSession, StaffToken
from admin.roles import ROLES, permissions_of, valid_scope
from audit import services as audit
from cosigner.vault import SealedSecret, open_secret, rewrap, seal

USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{2,31}$")


def actor_of(staff_id: str) -> str:
    return f"staff:{staff_id}"


def _audit(session, who, what, subject, now, **details):
    audit.record(session, actor=who, action=what, subject=subject, details=details, now=now)


def _check_roles(roles) -> list[str]:
    roles = sorted(set(roles))
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles:
        raise InvalidStaffInput(f"roles must be one or more of {', '.join(ROLES)}", code="invalid_roles")
    return roles


def _check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise InvalidStaffInput(f"passwords need at least {MIN_PASSWORD_LENGTH} characters", code="weak_password")


def get(session: Session, staff_id: str) -> StaffMember:
    member = session.get(StaffMember, staff_id)
    if member is None:
        raise StaffNotFound("no such staff member")
    return member


def list_staff(session: Session) -> list[StaffMember]:
    return list(session.scalars(select(StaffMember).order_by(StaffMember.id)))


# -- management ---------------------------------------------------------------------------
def create(session: Session, staff_id: str, password: str, roles, *, by: str, now: dt.datetime,
           display_name: str | None = None) -> StaffMember:
    """A new member, TOTP not yet enrolled (done at first login). Raises StaffExists,
    InvalidStaffInput."""
    if not USERNAME.match(staff_id or ""):
        raise InvalidStaffInput("usernames are 3-32 characters: a-z, 0-9, '_', '.', '-'", code="invalid_username")
    roles = _check_roles(roles)
    _check_password(password)
    if session.get(StaffMember, staff_id) is not None:
        raise StaffExists("that username is taken (usernames are never reused)")
    member = StaffMember(id=staff_id, display_name=display_name, password_hash=cred.hash_password(password),
                         roles=roles, created_at=now, created_by=by, totp_generation=0, last_totp_step=0,
                         failed_logins=0)
    session.add(member)
    session.flush()
    _audit(session, by, "staff.created", actor_of(staff_id), now, roles=roles)
    return member


def set_roles(session: Session, staff_id: str, roles, *, by: str, now: dt.datetime) -> StaffMember:
    member = get(session, staff_id)
    roles = _check_roles(roles)
    if by == actor_of(staff_id) and "admin" in member.roles and "admin" not in roles:
        raise Forbidden("you cannot remove your own admin role", code="own_admin_role")
    old, member.roles = member.roles, roles
    _audit(session, by, "staff.roles_changed", actor_of(staff_id), now, before=old, after=roles)
    return member


def disable(session: Session, staff_id: str, *, by: str, now: dt.datetime) -> StaffMember:
    """Disable a member: ends their sessions and revokes their tokens. Idempotent."""
    member = get(session, staff_id)
    if by == actor_of(staff_id):
        raise Forbidden("you cannot disable yourself", code="own_account")
    if member.disabled_at is None:
        member.disabled_at = now
        _end_sessions(session, staff_id, now)
        session.execute(update(StaffToken).where(StaffToken.staff_id == staff_id, StaffToken.revoked_at.is_(None))
                        .values(revoked_at=now))
        _audit(session, by, "staff.disabled", actor_of(staff_id), now)
    return member


def enable(session: Session, staff_id: str, *, by: str, now: dt.datetime) -> StaffMember:
    member = get(session, staff_id)
    if member.disabled_at is not None:
        member.disabled_at, member.failed_logins, member.locked_until = None, 0, None
        _audit(session, by, "staff.enabled", actor_of(staff_id), now)
    return member


def reset_totp(session: Session, staff_id: str, *, by: str, now: dt.datetime) -> StaffMember:
    """Forget the member's TOTP secret: they enroll a new one at their next login. Ends
    their sessions (tokens stay: they need TOTP only for re-authenticated actions)."""
    member = get(session, staff_id)
    member.totp_kek_id = member.totp_wrapped_dek = member.totp_sealed = None
    member.totp_enrolled_at = None
    member.totp_generation += 1
    member.last_totp_step = 0
    _end_sessions(session, staff_id, now)
    _audit(session, by, "staff.second_factor_reset", actor_of(staff_id), now)
    return member


def set_password(session: Session, staff_id: str, password: str, *, by: str, now: dt.datetime) -> StaffMember:
    member = get(session, staff_id)
    _check_password(password)
    member.password_hash = cred.hash_password(password)
    member.failed_logins, member.locked_until = 0, None
    _end_sessions(session, staff_id, now)
    _audit(session, by, "staff.password_set", actor_of(staff_id), now)
    return member


def unlock(session: Session, staff_id: str, *, by: str, now: dt.datetime) -> StaffMember:
    member = get(session, staff_id)
    member.failed_logins, member.locked_until = 0, None
    _audit(session, by, "staff.unlocked", actor_of(staff_id), now)
    return member


# -- TOTP -----------------------------------------------------------------------------------
def _record_id(member: StaffMember) -> str:
    return f"staff-totp:{member.id}:{member.totp_generation}"


def _secret(member: StaffMember, keyring) -> str | None:
    if member.totp_sealed is None:
        return None
    return open_secret(keyring, SealedSecret(member.totp_kek_id, member.totp_wrapped_dek, member.totp_sealed),
                       _record_id(member)).decode()


def enrollment_secret(member: StaffMember, keyring) -> str:
    """The secret being enrolled (created and sealed on first call). Only before enrollment."""
    if member.totp_enrolled_at is not None:
        raise Forbidden("TOTP is already enrolled", code="already_enrolled")
    secret = _secret(member, keyring)
    if secret is None:
        secret = cred.new_totp_secret()
        sealed = seal(keyring, secret.encode(), _record_id(member))
        member.totp_kek_id, member.totp_wrapped_dek, member.totp_sealed = \
            sealed.kek_id, sealed.wrapped_dek, sealed.ciphertext
    return secret


def enrollment_qr(member: StaffMember, keyring) -> str:
    return cred.qr_svg(cred.provisioning_uri(enrollment_secret(member, keyring), member.id))


def check_totp(session: Session, member: StaffMember, keyring, code: str, now: dt.datetime) -> bool:
    """Verify a TOTP code once (a used step is refused). Counts a failure towards the
    lockout; the caller commits either way."""
    secret = _secret(member, keyring)
    step = cred.totp_step(secret, code, now, member.last_totp_step) if secret else None
    if step is None:
        _failure(session, member, now, "second_factor")
        return False
    member.last_totp_step = step
    return True


def reauthenticate(session: Session, member: StaffMember, keyring, code: str | None, *, action: str,
                   now: dt.datetime) -> None:
    """Re-authentication for a sensitive action: a fresh TOTP code. Raises ReauthRequired."""
    if member.totp_enrolled_at is None:
        raise ReauthRequired("enroll TOTP before doing this", code="totp_not_enrolled")
    if not code or member.locked(now) or not check_totp(session, member, keyring, code, now):
        raise ReauthRequired("a current TOTP code is required for this action")
    _audit(session, actor_of(member.id), "staff.reauthenticated", actor_of(member.id), now, action=action)


# -- login ----------------------------------------------------------------------------------
@dataclass
class LoginResult:
    ok: bool
    error: str | None = None            # bad_credentials | locked | disabled | bad_code
    session_key: str | None = None      # the cookie value (only on success)
    stage: str | None = None


def _failure(session, member: StaffMember, now, factor: str) -> None:
    """A failed factor. Only second-factor failures (which need the right password)
    count towards the lockout: a wrong password must not let anyone lock a member out
    (the console throttles passwords per address and username instead, admin.login_guard)."""
    if factor == "password":
        _audit(session, actor_of(member.id), "staff.login_failed", actor_of(member.id), now, factor=factor)
        return
    member.failed_logins += 1
    _audit(session, actor_of(member.id), "staff.login_failed", actor_of(member.id), now, factor=factor,
           failures=member.failed_logins)
    if member.failed_logins >= MAX_FAILED_LOGINS:
        member.failed_logins, member.locked_until = 0, now + LOCKOUT
        _end_sessions(session, member.id, now)
        _audit(session, "system", "staff.locked", actor_of(member.id), now, until=member.locked_until.isoformat())


def login_password(session: Session, staff_id: str, password: str, now: dt.datetime) -> LoginResult:
    """First factor. On success opens a console session at stage `password` (TOTP to
    give) or `enroll` (TOTP to set up). The caller commits even on failure (audit).
    One argon2 verification whatever the username (unknown ones verify a dummy hash);
    a wrong password answers `bad_credentials` for every member, locked or not, and for
    unknown usernames alike — `locked` is only said to someone who knows the password."""
    member = session.get(StaffMember, (staff_id or "").strip().lower()[:64])
    good = cred.check_password(member.password_hash if member else None, password or "")
    if member is None or member.disabled_at is not None:
        return LoginResult(False, "bad_credentials")
    if not good:
        _failure(session, member, now, "password")
        return LoginResult(False, "bad_credentials")
    if member.locked(now):
        return LoginResult(False, "locked")
    if cred.needs_rehash(member.password_hash):
        member.password_hash = cred.hash_password(password)
    stage = "password" if member.totp_enrolled_at else "enroll"
    key = cred.new_session_key()
    session.add(StaffSession(id=cred.digest(key), staff_id=member.id, stage=stage, created_at=now, last_seen_at=now))
    return LoginResult(True, session_key=key, stage=stage)


def login_throttled(session: Session, username: str, now: dt.datetime) -> None:
    """Tell staff that a username's failed-password budget across all addresses ran out
    (once per window): an audit event, whether or not the username exists."""
    from admin.login_guard import normalize
    _audit(session, "system", "staff.login_throttled", f"login:{normalize(username)[:32]}", now)


def login_totp(session: Session, staff_session: StaffSession, keyring, code: str, now: dt.datetime) -> LoginResult:
    """Second factor for a session at stage `password` or `enroll` (the first valid code
    confirms the enrollment). Success makes the session `full`."""
    member = get(session, staff_session.staff_id)
    if member.locked(now) or member.disabled_at is not None:
        staff_session.ended_at = now
        return LoginResult(False, "locked")
    if not check_totp(session, member, keyring, code, now):
        return LoginResult(False, "locked" if member.locked(now) else "bad_code")
    if staff_session.stage == "enroll":
        member.totp_enrolled_at = now
        _audit(session, actor_of(member.id), "staff.second_factor_enrolled", actor_of(member.id), now)
    staff_session.stage, staff_session.last_seen_at = "full", now
    member.failed_logins, member.last_login_at = 0, now
    _audit(session, actor_of(member.id), "staff.login", actor_of(member.id), now)
    return LoginResult(True, stage="full")


def session_for(session: Session, key: str | None, now: dt.datetime, *, touch: bool = True) -> StaffSession | None:
    """The live session for a cookie value, or None (unknown, ended, idle for longer
    than SESSION_IDLE_TIMEOUT, older than SESSION_MAX_AGE, member disabled or locked).
    A half-finished login expires after LOGIN_STAGE_TIMEOUT."""
    if not key:
        return None
    row = session.get(StaffSession, cred.digest(key))
    if row is None or row.ended_at is not None:
        return None
    idle = SESSION_IDLE_TIMEOUT if row.stage == "full" else LOGIN_STAGE_TIMEOUT
    member = session.get(StaffMember, row.staff_id)
    if now - row.last_seen_at > idle or now - row.created_at > SESSION_MAX_AGE or member is None \
            or member.disabled_at is not None or member.locked(now):
        row.ended_at = now
        return None
    if touch:
        row.last_seen_at = now
    return row


def logout(session: Session, staff_session: StaffSession, now: dt.datetime) -> None:
    staff_session.ended_at = now
    _audit(session, actor_of(staff_session.staff_id), "staff.logout", actor_of(staff_session.staff_id), now)


def _end_sessions(session: Session, staff_id: str, now: dt.datetime) -> None:
    session.execute(update(StaffSession).where(StaffSession.staff_id == staff_id, StaffSession.ended_at.is_(None))
                    .values(ended_at=now))


# -- API tokens -------------------------------------------------------------------------------
def create_token(session: Session, staff_id: str, name: str, scopes, *, by: str, now: dt.datetime,
                 ttl: dt.timedelta = TOKEN_DEFAULT_TTL) -> tuple[StaffToken, str]:
    """A new token for `staff_id` with `scopes` (each granted by the member's roles).
    Returns (row, token); the token is shown once and stored only as a digest."""
    member = get(session, staff_id)
    scopes = sorted(set(scopes))
    if not scopes or not all(valid_scope(s) for s in scopes):
        raise InvalidStaffInput("scopes must be role names or permissions", code="invalid_scopes")
    granted = permissions_of(member.roles)
    for s in scopes:
        if (s in ROLES and s not in member.roles) or (s not in ROLES and s not in granted):
            raise Forbidden(f"scope {s!r} is not granted by the member's roles", code="scope_not_granted")
    if not (dt.timedelta(minutes=5) <= ttl <= TOKEN_MAX_TTL):
        raise InvalidStaffInput("token lifetime must be between 5 minutes and a year", code="invalid_ttl")
    if not (1 <= len(name or "") <= 80):
        raise InvalidStaffInput("a token needs a name (1-80 characters)", code="invalid_name")
    token = cred.new_token()
    row = StaffToken(id="tok_" + secrets.token_hex(8), staff_id=staff_id, name=name, digest=cred.digest(token),
                     scopes=scopes, created_at=now, expires_at=now + ttl)
    session.add(row)
    session.flush()
    _audit(session, by, "staff.credential_issued", actor_of(staff_id), now, credential_id=row.id, scopes=scopes,
           expires_at=row.expires_at.isoformat())
    return row, token


def list_tokens(session: Session, staff_id: str | None = None) -> list[StaffToken]:
    stmt = select(StaffToken).order_by(StaffToken.created_at.desc())
    if staff_id:
        stmt = stmt.where(StaffToken.staff_id == staff_id)
    return list(session.scalars(stmt))


def revoke_token(session: Session, token_id: str, *, by: str, now: dt.datetime,
                 owner: str | None = None) -> StaffToken:
    """Revoke (idempotent). With `owner`, only that member's token is found."""
    row = session.get(StaffToken, token_id)
    if row is None or (owner is not None and row.staff_id != owner):
        raise TokenNotFound("no such token")
    if row.revoked_at is None:
        row.revoked_at = now
        _audit(session, by, "staff.credential_revoked", actor_of(row.staff_id), now, credential_id=row.id)
    return row


def token_for(session: Session, token: str, now: dt.datetime) -> tuple[StaffToken, StaffMember] | None:
    """The live token and its member for a presented bearer token, or None."""
    if not token.startswith(cred.TOKEN_PREFIX):
        return None
    row = session.scalar(select(StaffToken).where(StaffToken.digest == cred.digest(token)))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    member = session.get(StaffMember, row.staff_id)
    if member is None or member.disabled_at is not None:
        return None
    if row.last_used_at is None or now - row.last_used_at > TOKEN_TOUCH_EVERY:
        row.last_used_at = now
    return row, member


# -- maintenance -------------------------------------------------------------------------------
def prune(session: Session, now: dt.datetime, keep: dt.timedelta = dt.timedelta(days=30)) -> dict:
    """Delete sessions ended (or idle past their timeout) before now-keep, and tokens
    revoked or expired before now-keep. Idempotent. Returns the counts."""
    cutoff = now - keep
    stale = session.scalars(select(StaffSession).where(
        (StaffSession.ended_at < cutoff) | (StaffSession.last_seen_at < cutoff))).all()
    for row in stale:
        session.delete(row)
    old_tokens = session.scalars(select(StaffToken).where(
        (StaffToken.revoked_at < cutoff) | (StaffToken.expires_at < cutoff))).all()
    for row in old_tokens:
        session.delete(row)
    return {"staff_sessions": len(stale), "staff_tokens": len(old_tokens)}


def rewrap_secrets(session: Session, keyring) -> int:
    """Master-key rotation: re-wrap every sealed TOTP secret under the current key.
    Idempotent. Returns how many rows were looked at."""
    n = 0
    for member in session.scalars(select(StaffMember).where(StaffMember.totp_sealed.is_not(None))):
        sealed = rewrap(keyring, SealedSecret(member.totp_kek_id, member.totp_wrapped_dek, member.totp_sealed),
                        _record_id(member))
        member.totp_kek_id, member.totp_wrapped_dek, member.totp_sealed = \
            sealed.kek_id, sealed.wrapped_dek, sealed.ciphertext
        n += 1
    return n
