"""Interim staff authentication: `Authorization: Bearer <key>` against STAFF_API_KEYS
(id:key pairs from settings), behind a small interface so the admin-console work can
replace it with staff accounts (TOTP, roles, sessions) without touching the views.

`@staff_required` puts the staff id on `flask.g.staff_id`; failures are 401
`staff_unauthorized`. Keys are compared in constant time and never logged.
"""
from __future__ import annotations

import functools
import hmac

from flask import g, request

from app.auth.errors import AuthError
from app.deps import deps


class StaffAuthenticator:
    """Interface: return the staff id for a bearer token, or None."""

    def authenticate(self, token: str) -> str | None:
        raise NotImplementedError


class SettingsStaffKeys(StaffAuthenticator):
    def __init__(self, pairs):
        self._pairs = tuple(pairs)

    def authenticate(self, token: str) -> str | None:
        found = None
        for staff_id, key in self._pairs:
            if hmac.compare_digest(token.encode(), key.encode()):
                found = staff_id
        return found


def authenticator() -> StaffAuthenticator:
    return SettingsStaffKeys(deps().settings.staff_api_keys)


def staff_required(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        staff_id = authenticator().authenticate(token.strip()) if scheme.lower() == "bearer" and token else None
        if staff_id is None:
            raise AuthError("staff credentials required", code="staff_unauthorized")
        g.staff_id = staff_id
        return view(*args, **kwargs)
    doc = getattr(wrapper, "_apidoc", None) or {}
    doc.setdefault("manual_doc", {}).setdefault("security", [{"StaffBearer": []}])
    wrapper._apidoc = doc
    return wrapper
