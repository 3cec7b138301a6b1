"""Staff authentication and authorization for the admin API.

`@staff_required` (bare) or `@staff_required("approver")` / `@staff_required("spends:approve")`
(a role name or a permission from admin.roles; several arguments mean any of them):

1. authenticate — `Authorization: Bearer cst_…`, a scoped API token of an active staff
   member (admin.services); or, outside production only, an interim development key from
   STAFF_API_KEYS (every role, no TOTP). Failure: 401 `staff_unauthorized`.
2. authorize — the member's roles (and, for a token, its scopes) must allow the need;
   a bare decorator uses admin.roles.ENDPOINT_PERMISSIONS for the endpoint, else any
   staff member. Failure: 403 `forbidden`.
3. re-authenticate — permissions in REAUTH_PERMISSIONS (freeze, unfreeze, share release)
   need a current TOTP code of the member in `X-Staff-TOTP`. Failure: 401 `reauth_required`.

Puts the staff id on `g.staff_id` and the principal on `g.staff`. Tokens, keys and codes
are never logged. Console pages use cookie sessions instead (app/console/auth.py) and
share the same authorization table.
"""
from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass

from flask import g, request

from admin import roles as rbac
from admin.errors import Forbidden
from app.auth.errors import AuthError
from app.deps import deps
from app.extensions import db
from store.base import utcnow

TOTP_HEADER = "X-Staff-TOTP"


@dataclass
class Principal:
    staff_id: str
    roles: frozenset
    kind: str                        # token | session | dev_key
    scopes: tuple | None = None      # token scopes; None = every permission of the roles
    credential_id: str | None = None
    member: object | None = None     # admin.model.StaffMember (None for a development key)

    @property
    def actor(self) -> str:
        return f"staff:{self.staff_id}"

    def may(self, need: str) -> bool:
        return rbac.allows(self.roles, self.scopes, need)


class StaffAuthenticator:
    """Interface: return the Principal for a bearer token, or None."""

    def authenticate(self, token: str) -> Principal | None:
        raise NotImplementedError


class DevelopmentStaffKeys(StaffAuthenticator):
    """STAFF_API_KEYS (`id:key` pairs): a development fallback, refused in production by
    Settings.validate(). A key holder has every role and needs no TOTP."""

    def __init__(self, pairs):
        self._pairs = tuple(pairs)

    def authenticate(self, token: str) -> Principal | None:
        found = None
        for staff_id, key in self._pairs:
            if hmac.compare_digest(token.encode(), key.encode()):
                found = staff_id
        return Principal(found, frozenset(rbac.ROLES), "dev_key") if found else None


SettingsStaffKeys = DevelopmentStaffKeys      # the interim name


class TokenAuthenticator(StaffAuthenticator):
    """Scoped API tokens stored as digests (admin.services.token_for)."""

    def authenticate(self, token: str) -> Principal | None:
        from admin import services
        found = services.token_for(db.session, token, utcnow())
        if found is None:
            return None
        row, member = found
        if db.session.dirty:          # last_used_at moved: keep it even if the view fails
            db.session.commit()
        return Principal(member.id, frozenset(member.roles), "token", tuple(row.scopes), row.id, member)


def authenticate_bearer() -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    principal = None
    if scheme.lower() == "bearer" and token:
        principal = TokenAuthenticator().authenticate(token)
        settings = deps().settings
        if principal is None and settings.staff_api_keys and not settings.production:
            principal = DevelopmentStaffKeys(settings.staff_api_keys).authenticate(token)
    if principal is None:
        raise AuthError("staff credentials required", code="staff_unauthorized")
    return principal


def authorize(principal: Principal, *needs: str, totp: str | None = None, reauth: bool = True) -> None:
    """Raise Forbidden unless the principal may do one of `needs`; then, for a
    re-authenticated permission, check the TOTP code (tokens) — raises ReauthRequired."""
    if needs and not any(principal.may(n) for n in needs):
        raise Forbidden("your role does not allow this", code="forbidden")
    if reauth and principal.kind == "token" and any(n in rbac.REAUTH_PERMISSIONS for n in needs):
        from admin import services
        try:
            services.reauthenticate(db.session, principal.member, deps().cosigner.keyring, totp,
                                    action=request.endpoint or "", now=utcnow())
        finally:
            db.session.commit()       # the used step (or the failure count) sticks


def current_staff() -> Principal:
    return g.staff


def require(*needs: str) -> None:
    """Inside a view: an extra check (e.g. unfreeze needs more than freeze)."""
    authorize(g.staff, *needs, totp=request.headers.get(TOTP_HEADER))


def staff_required(view=None, /, *needs, defer_reauth: bool = False):
    """`@staff_required`, `@staff_required("approver")`, `@staff_required("audit:read")`.
    With `defer_reauth=True` the view calls `require(...)` itself once it knows which
    permission applies (e.g. freeze vs unfreeze), so the role is checked before TOTP."""
    if view is not None and not callable(view):
        needs, view = (view, *needs), None
    for n in needs:
        if n not in rbac.ROLES and n not in rbac.PERMISSIONS:
            raise ValueError(f"unknown role or permission {n!r}")

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            principal = authenticate_bearer()
            wanted = needs
            if not wanted and request.endpoint in rbac.ENDPOINT_PERMISSIONS:
                wanted = (rbac.ENDPOINT_PERMISSIONS[request.endpoint],)
            g.staff, g.staff_id = principal, principal.staff_id
            authorize(principal, *wanted, totp=request.headers.get(TOTP_HEADER), reauth=not defer_reauth)
            return fn(*args, **kwargs)
        doc = getattr(wrapper, "_apidoc", None) or {}
        doc.setdefault("manual_doc", {}).setdefault("security", [{"StaffBearer": []}])
        wrapper._apidoc = doc
        from app.openapi_errors import STAFF, document_errors
        document_errors(wrapper, STAFF)
        wrapper._staff_needs = needs
        return wrapper
    return decorate(view) if view is not None else decorate
