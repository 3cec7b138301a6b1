"""The admin API: every role × every /v1/admin endpoint → allowed or 403 (with scoped
API tokens), 401 without credentials, TOTP re-authentication for freeze/release, token
revocation, staff management, and the audit-log query and chain verification."""
from __future__ import annotations

import pytest
from sqlalchemy import update

from admin.roles import ROLES
from audit.model import AuditEvent
from store.session import session_scope
from tests.browser import kit

# (method, URL rule) -> what it needs (None: any staff member). Every admin endpoint must be here.
ENDPOINTS = {
    ("GET", "/v1/admin/me"): None,
    ("GET", "/v1/admin/status"): "status:read",
    ("GET", "/v1/admin/accounts"): "accounts:read",
    ("GET", "/v1/admin/accounts/<account_id>"): "accounts:read",
    ("POST", "/v1/admin/accounts/<account_id>/freeze"): "accounts:freeze",
    ("GET", "/v1/admin/spends"): "spends:read",
    ("POST", "/v1/admin/spends/<spend_id>/approvals"): "spends:approve",
    ("GET", "/v1/admin/audit"): "audit:read",
    ("GET", "/v1/admin/audit/verify"): "audit:read",
    ("GET", "/v1/admin/outbox/push"): "outbox:read",
    ("GET", "/v1/admin/outbox/mail"): "outbox:read",
    ("GET", "/v1/admin/staff"): "staff:manage",
    ("POST", "/v1/admin/staff"): "staff:manage",
    ("PUT", "/v1/admin/staff/<staff_id>/roles"): "staff:manage",
    ("POST", "/v1/admin/staff/<staff_id>/disable"): "staff:manage",
    ("POST", "/v1/admin/staff/<staff_id>/reset-totp"): "staff:manage",
    ("GET", "/v1/admin/tokens"): None,
    ("DELETE", "/v1/admin/tokens/<token_id>"): None,
    ("GET", "/v1/admin/recoveries"): "recovery:read",
    ("GET", "/v1/admin/recoveries/<case_id>"): "recovery:read",
    ("POST", "/v1/admin/recoveries/<case_id>/verify-identity"): "recovery:verify",
    ("POST", "/v1/admin/recoveries/<case_id>/approve-release"): "recovery:approve",
    ("POST", "/v1/admin/recoveries/<case_id>/cancel"): "recovery:cancel",
    ("GET", "/v1/admin/inheritance/claims"): "recovery:read",
    ("GET", "/v1/admin/inheritance/claims/<claim_id>"): "recovery:read",
    ("POST", "/v1/admin/inheritance/claims/<claim_id>/cancel"): "recovery:cancel",
}
# The specification, written out per role (not derived from the code under test).
ALLOWED = {
    "support": {"status:read", "accounts:read", "accounts:freeze", "spends:read", "recovery:read", "recovery:verify",
                "recovery:cancel"},
    "approver": {"status:read", "accounts:read", "accounts:freeze", "spends:read", "spends:approve", "recovery:read",
                 "recovery:approve", "recovery:cancel"},
    "auditor": {"status:read", "audit:read"},
    "admin": {"status:read", "staff:manage", "outbox:read"},
}
BODIES = {
    "/v1/admin/accounts/<account_id>/freeze": {"frozen": True, "reason": "customer called"},
    "/v1/admin/spends/<spend_id>/approvals": {"decision": "approve"},
    "/v1/admin/staff": {"staff_id": "newbie", "password": kit.PASSWORD, "roles": ["support"]},
    "/v1/admin/staff/<staff_id>/roles": {"roles": ["support"]},
}


def _url(rule: str) -> str:
    out = rule
    for name in ("account_id", "spend_id", "staff_id", "token_id", "case_id", "claim_id"):
        out = out.replace(f"<{name}>", "nobody" if name == "staff_id" else f"no-such-{name}")
    return out + ("?account_id=x" if rule == "/v1/admin/accounts" else "")


@pytest.fixture
def tokens(settings):
    out = {}
    for role in ROLES:
        kit.make_staff(settings, f"{role}1", [role])
        out[role] = kit.make_token(settings, f"{role}1", [role])
    kit.make_staff(settings, "nobody", ["support"])
    return out


def test_the_matrix_covers_every_admin_endpoint(app):
    found = {(m, r.rule) for r in app.url_map.iter_rules() if r.rule.startswith("/v1/admin")
             for m in r.methods - {"HEAD", "OPTIONS"}}
    assert found == set(ENDPOINTS)


@pytest.mark.parametrize("role", ROLES)
def test_authorization_matrix(app, tokens, role):
    c = app.test_client()
    outcome = {}
    for (method, rule), need in ENDPOINTS.items():
        r = c.open(_url(rule), method=method, json=BODIES.get(rule),
                   headers={"Authorization": f"Bearer {tokens[role]}"})
        assert r.status_code != 500, (method, rule, r.json)
        if r.status_code == 403:
            assert r.json["error"]["code"] == "forbidden"
        else:                       # let through: the view ran (404 for the fake ids) or asked for TOTP
            assert not (r.status_code == 401 and r.json["error"]["code"] != "reauth_required"), (method, rule)
        outcome[(method, rule)] = r.status_code != 403
    expected = {k: need is None or need in ALLOWED[role] for k, need in ENDPOINTS.items()}
    assert outcome == expected


def test_unfreezing_needs_the_approver_role(app, tokens):
    c = app.test_client()
    body = {"frozen": False, "reason": "resolved"}
    r = c.post("/v1/admin/accounts/x/freeze", json=body, headers={"Authorization": f"Bearer {tokens['support']}"})
    assert (r.status_code, r.json["error"]["code"]) == (403, "forbidden")
    r = c.post("/v1/admin/accounts/x/freeze", json=body, headers={"Authorization": f"Bearer {tokens['approver']}"})
    assert (r.status_code, r.json["error"]["code"]) == (401, "reauth_required")


def test_no_credentials_or_a_bad_token_is_401_everywhere(app, tokens):
    c = app.test_client()
    for (method, rule) in ENDPOINTS:
        for headers in ({}, {"Authorization": "Bearer cst_" + "x" * 43}, {"Authorization": "Basic abc"}):
            r = c.open(_url(rule), method=method, json=BODIES.get(rule), headers=headers)
            assert (r.status_code, r.json["error"]["code"]) == (401, "staff_unauthorized"), (method, rule)


def test_freeze_with_a_token_needs_a_fresh_totp_code(app, settings):
    secret = kit.make_staff(settings, "sam", ["approver"])
    token = kit.make_token(settings, "sam", ["accounts:freeze", "accounts:read"])
    c = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    r = c.post("/v1/admin/accounts/x/freeze", json={"reason": "call"}, headers={**auth, "X-Staff-TOTP": "000000"})
    assert (r.status_code, r.json["error"]["code"]) == (401, "reauth_required")
    code = kit.fresh_code(settings, "sam", secret)
    r = c.post("/v1/admin/accounts/x/freeze", json={"reason": "call"}, headers={**auth, "X-Staff-TOTP": code})
    assert (r.status_code, r.json["error"]["code"]) == (404, "account_not_found")      # re-auth passed
    r = c.post("/v1/admin/accounts/x/freeze", json={"reason": "call"}, headers={**auth, "X-Staff-TOTP": code})
    assert (r.status_code, r.json["error"]["code"]) == (401, "reauth_required")        # a code works once
    # a scope the token lacks is refused even though the role has it
    r = c.post("/v1/admin/spends/x/approvals", json={"decision": "approve"}, headers=auth)
    assert (r.status_code, r.json["error"]["code"]) == (403, "forbidden")


def test_revoked_expired_and_disabled_tokens_stop_working(app, settings):
    kit.make_staff(settings, "boss", ["admin"])
    kit.make_staff(settings, "tim", ["auditor"])
    boss = {"Authorization": f"Bearer {kit.make_token(settings, 'boss', ['admin'])}"}
    tim_token = kit.make_token(settings, "tim", ["auditor"])
    tim = {"Authorization": f"Bearer {tim_token}"}
    c = app.test_client()
    listed = c.get("/v1/admin/tokens", headers=tim).json["tokens"]
    assert len(listed) == 1 and "digest" not in listed[0] and tim_token not in str(listed)
    assert c.delete(f"/v1/admin/tokens/{listed[0]['token_id']}", headers=tim).status_code == 200
    assert c.get("/v1/admin/me", headers=tim).status_code == 401
    tim = {"Authorization": f"Bearer {kit.make_token(settings, 'tim', ['auditor'])}"}
    assert c.get("/v1/admin/audit", headers=tim).status_code == 200
    assert c.post("/v1/admin/staff/tim/disable", headers=boss).json["active"] is False
    assert c.get("/v1/admin/audit", headers=tim).status_code == 401
    import datetime as dt
    short = kit.make_token(settings, "boss", ["admin"], ttl=dt.timedelta(minutes=5))
    from admin.model import StaffToken
    from store.base import utcnow
    with session_scope(settings.database_url) as s:
        s.execute(update(StaffToken).where(StaffToken.staff_id == "boss").values(expires_at=utcnow()))
    assert c.get("/v1/admin/me", headers={"Authorization": f"Bearer {short}"}).status_code == 401


def test_staff_management_through_the_api(app, settings):
    kit.make_staff(settings, "root", ["admin"])
    auth = {"Authorization": f"Bearer {kit.make_token(settings, 'root', ['staff:manage'])}"}
    c = app.test_client()
    made = c.post("/v1/admin/staff", json={"staff_id": "zoe", "password": kit.PASSWORD, "roles": ["support"]},
                  headers=auth)
    assert made.status_code == 201 and made.json["totp_enrolled"] is False and "password" not in made.json
    again = c.post("/v1/admin/staff", json={"staff_id": "zoe", "password": kit.PASSWORD, "roles": ["support"]},
                   headers=auth)
    assert (again.status_code, again.json["error"]["code"]) == (409, "staff_exists")
    weak = c.post("/v1/admin/staff", json={"staff_id": "amy", "password": "short", "roles": ["support"]}, headers=auth)
    assert weak.status_code == 422
    assert c.put("/v1/admin/staff/zoe/roles", json={"roles": ["approver", "support"]},
                 headers=auth).json["roles"] == ["approver", "support"]
    assert c.post("/v1/admin/staff/zoe/reset-totp", headers=auth).status_code == 200
    assert c.post("/v1/admin/staff/root/disable", headers=auth).json["error"]["code"] == "own_account"
    from audit.model import AuditEvent as E
    from sqlalchemy import select
    with session_scope(settings.database_url) as s:
        events = [(e.actor, e.action) for e in s.scalars(select(E).where(E.subject == "staff:zoe").order_by(E.seq))]
    assert events == [("staff:root", "staff.created"), ("staff:root", "staff.roles_changed"),
                      ("staff:root", "staff.second_factor_reset")]


def test_audit_query_and_verify_report_the_first_broken_link(app, settings):
    kit.make_staff(settings, "aud", ["auditor"])
    kit.make_staff(settings, "xena", ["support"])
    kit.make_staff(settings, "xavi", ["support"])
    auth = {"Authorization": f"Bearer {kit.make_token(settings, 'aud', ['auditor'])}"}
    c = app.test_client()
    assert c.get("/v1/admin/audit/verify", headers=auth).json["ok"] is True
    found = c.get("/v1/admin/audit?subject=staff:xena", headers=auth).json["events"]
    assert [e["action"] for e in found] == ["staff.created"]
    staff_events = c.get("/v1/admin/audit?action=staff.&limit=2", headers=auth).json
    assert len(staff_events["events"]) == 2 and staff_events["next_before_seq"] is not None
    seq = found[0]["seq"]
    with session_scope(settings.database_url) as s:
        s.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(actor="staff:someone-else"))
    report = c.get("/v1/admin/audit/verify", headers=auth).json
    assert report["ok"] is False and report["first_broken_seq"] == seq
    assert c.get("/v1/admin/audit?since=not-a-date", headers=auth).status_code == 422


def test_development_keys_still_work_outside_production(app_factory, settings):
    from dataclasses import replace
    app = app_factory(replace(settings, staff_api_keys=(("dev", "d" * 30),)))
    me = app.test_client().get("/v1/admin/me", headers={"Authorization": "Bearer " + "d" * 30})
    assert me.status_code == 200 and me.json["kind"] == "dev_key" and me.json["staff_id"] == "dev"
