"""Helpers shared by the admin tests (unit, API, browser): staff members with enrolled
TOTP, API tokens, and TOTP codes that respect the replay guard."""
from __future__ import annotations

import datetime as dt

import pyotp

PASSWORD = "correct horse battery staple"


def _keyring(settings):
    from cosigner.vault import keyring_from_settings
    return keyring_from_settings(settings)


def make_staff(settings, staff_id: str, roles, *, enrolled: bool = True, password: str = PASSWORD) -> str | None:
    """Create a member (TOTP enrolled unless told otherwise); return the TOTP secret."""
    from admin import services
    from store.base import utcnow
    from store.session import session_scope
    with session_scope(settings.database_url) as s:
        m = services.create(s, staff_id, password, roles, by="test", now=utcnow())
        if not enrolled:
            return None
        secret = services.enrollment_secret(m, _keyring(settings))
        m.totp_enrolled_at = utcnow()
    return secret


def make_token(settings, staff_id: str, scopes, ttl=dt.timedelta(days=1)) -> str:
    from admin import services
    from store.base import utcnow
    from store.session import session_scope
    with session_scope(settings.database_url) as s:
        _, token = services.create_token(s, staff_id, "test", scopes, by="test", now=utcnow(), ttl=ttl)
    return token


def fresh_code(settings, staff_id: str, secret: str) -> str:
    """A TOTP code the console will accept (tests/totp_steps.py)."""
    from admin.model import StaffMember
    from store.session import session_scope
    from tests.totp_steps import fresh
    with session_scope(settings.database_url) as s:
        last = s.get(StaffMember, staff_id).last_totp_step
    return fresh(pyotp.TOTP(secret), last)
