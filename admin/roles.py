"""Roles, permissions and API-token scopes — the one authorization table.

Roles (a staff member may hold several):
- `support`: read accounts and recovery cases, verify a requester's identity, freeze;
- `approver`: approve share releases and spends routed to staff, freeze and unfreeze;
- `auditor`: read the audit log and verify its chain;
- `admin`: manage staff members and see the development outboxes.

Every staff endpoint names a permission (`accounts:read`, …). A session may use every
permission its member's roles grant. A token may use only the permissions in its scopes
(a scope is a permission, or a role name standing for all of that role's permissions),
and only while the member still holds a role that grants them.
"""
from __future__ import annotations

ROLES = ("support", "approver", "auditor", "admin")

PERMISSIONS: dict[str, frozenset[str]] = {
    "status:read": frozenset(ROLES),
    "accounts:read": frozenset({"support", "approver"}),
    "accounts:freeze": frozenset({"support", "approver"}),
    "accounts:unfreeze": frozenset({"approver"}),
    "spends:read": frozenset({"support", "approver"}),
    "spends:approve": frozenset({"approver"}),
    "recovery:read": frozenset({"support", "approver"}),
    "recovery:verify": frozenset({"support"}),
    "recovery:approve": frozenset({"approver"}),
    "recovery:cancel": frozenset({"support", "approver"}),
    "audit:read": frozenset({"auditor"}),
    "staff:manage": frozenset({"admin"}),
    "outbox:read": frozenset({"admin"}),
}

# Actions that need a fresh TOTP code (console: in the confirmation form; API tokens:
# the X-Staff-TOTP header), whatever the role.
REAUTH_PERMISSIONS = frozenset({"accounts:freeze", "accounts:unfreeze", "recovery:approve"})

# Endpoints owned by other packages that use a bare `@staff_required`: the permission each
# one needs. An unlisted bare endpoint only needs an authenticated staff member.
ENDPOINT_PERMISSIONS: dict[str, str] = {
    "recovery_admin.list_cases": "recovery:read",
    "recovery_admin.get_case": "recovery:read",
    "recovery_admin.verify_identity": "recovery:verify",
    "recovery_admin.approve_release": "recovery:approve",
    "recovery_admin.cancel_case": "recovery:cancel",
}


def permissions_of(roles) -> frozenset[str]:
    """Every permission the given roles grant."""
    roles = set(roles)
    return frozenset(p for p, granted in PERMISSIONS.items() if granted & roles)


def expand_scopes(scopes) -> frozenset[str]:
    """Scopes → permissions (a role name expands to its permissions)."""
    out = set()
    for s in scopes:
        if s in ROLES:
            out |= permissions_of({s})
        elif s in PERMISSIONS:
            out.add(s)
    return frozenset(out)


def valid_scope(scope: str) -> bool:
    return scope in ROLES or scope in PERMISSIONS


def allows(roles, scopes, need: str) -> bool:
    """Whether a member with `roles`, acting through `scopes` (None: a console session or
    the development key, i.e. every permission of the roles), may do `need` — a
    permission, or a role name meaning "holds this role"."""
    roles = frozenset(roles)
    if need in ROLES:
        if need not in roles:
            return False
        return scopes is None or need in scopes
    granted = permissions_of(roles)
    if need not in granted:
        return False
    return scopes is None or need in expand_scopes(scopes)
