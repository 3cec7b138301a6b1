"""Staff auth units: the role/permission table, token scopes, TOTP replay guard, argon2id
hashes, login lockout, idle timeout, CSRF on console forms, secrets never stored in clear."""
from __future__ import annotations

import datetime as dt
import re

import pyotp
import pytest

from admin import credentials as cred
from admin import roles as rbac
from admin import services
from admin.limits import LOCKOUT, MAX_FAILED_LOGINS, SESSION_IDLE_TIMEOUT
from admin.model import StaffMember, StaffToken
from store.base import utcnow
from store.session import session_scope
from tests.browser import kit


# -- roles and scopes (pure) -----------------------------------------------------------------
@pytest.mark.parametrize("role,need,allowed", [
    ("support", "accounts:read", True), ("support", "recovery:verify", True), ("support", "recovery:approve", False),
    ("support", "spends:approve", False), ("support", "accounts:unfreeze", False), ("support", "audit:read", False),
    ("approver", "recovery:approve", True), ("approver", "spends:approve", True), ("approver", "recovery:verify", False),
    ("approver", "accounts:unfreeze", True), ("approver", "staff:manage", False),
    ("auditor", "audit:read", True), ("auditor", "accounts:read", False), ("auditor", "status:read", True),
    ("admin", "staff:manage", True), ("admin", "spends:approve", False), ("admin", "audit:read", False),
    ("admin", "admin", True), ("support", "approver", False),
])
def test_role_checks(role, need, allowed):
    assert rbac.allows({role}, None, need) is allowed


def test_token_scopes_narrow_the_roles_and_never_widen_them():
    roles = {"approver", "support"}
    assert rbac.allows(roles, ("status:read",), "status:read")
    assert not rbac.allows(roles, ("status:read",), "spends:approve")            # not in the scopes
    assert rbac.allows(roles, ("approver",), "spends:approve")                   # a role scope expands
    assert not rbac.allows(roles, ("approver",), "recovery:verify")              # support perms not in scope
    assert not rbac.allows({"support"}, ("approver",), "spends:approve")        # role gone: scope is dead
    assert not rbac.allows(roles, ("audit:read",), "audit:read")                 # never granted by the roles
    assert rbac.expand_scopes(["auditor", "bogus"]) == {"audit:read", "status:read"}


def test_every_permission_is_granted_to_some_role():
    assert all(granted and granted <= set(rbac.ROLES) for granted in rbac.PERMISSIONS.values())
    assert rbac.REAUTH_PERMISSIONS <= set(rbac.PERMISSIONS)


def test_staff_required_refuses_unknown_roles_at_import_time():
    from app.auth.staff import staff_required
    with pytest.raises(ValueError):
        staff_required("superuser")


# -- credentials (pure) -------------------------------------------------------------------------
def test_totp_codes_work_once_and_only_near_now():
    secret = cred.new_totp_secret()
    now = utcnow()
    totp = pyotp.TOTP(secret)
    code = totp.at(now)
    step = cred.totp_step(secret, code, now, last_step=0)
    assert step == totp.timecode(now)
    assert cred.totp_step(secret, code, now, last_step=step) is None              # replay refused
    assert cred.totp_step(secret, totp.at(now - dt.timedelta(minutes=5)), now, 0) is None
    assert cred.totp_step(secret, "12345", now, 0) is None and cred.totp_step(secret, "abcdef", now, 0) is None


def test_passwords_are_argon2id_and_unknown_users_cost_a_verification():
    h = cred.hash_password("a long password 1")
    assert h.startswith("$argon2id$") and "a long password" not in h
    assert cred.check_password(h, "a long password 1") and not cred.check_password(h, "wrong")
    assert cred.check_password(None, "anything") is False


def test_enrollment_qr_is_an_inline_svg():
    svg = cred.qr_svg(cred.provisioning_uri(cred.new_totp_secret(), "alice"))
    assert svg.startswith("<svg") and "</svg>" in svg


# -- with a database ----------------------------------------------------------------------------
def test_wrong_passwords_never_lock_and_answer_like_an_unknown_user(settings):
    """Issue #14, L7: the 6th wrong password used to answer `locked` for a real member
    (never for an unknown one), and anyone could lock any member remotely."""
    kit.make_staff(settings, "carol", ["support"])
    now = utcnow()
    with session_scope(settings.database_url) as s:
        for _ in range(3 * MAX_FAILED_LOGINS):
            assert services.login_password(s, "carol", "wrong password!", now).error == "bad_credentials"
            assert services.login_password(s, "nobody", "wrong password!", now).error == "bad_credentials"
        assert not s.get(StaffMember, "carol").locked(now)
        assert services.login_password(s, "carol", kit.PASSWORD, now).ok
    with session_scope(settings.database_url) as s:
        from audit.model import AuditEvent
        from sqlalchemy import select
        actions = [e.action for e in s.scalars(select(AuditEvent).where(AuditEvent.subject == "staff:carol"))]
    assert actions.count("staff.login_failed") == 3 * MAX_FAILED_LOGINS and "staff.locked" not in actions


def test_locked_is_only_said_to_someone_with_the_password(settings):
    kit.make_staff(settings, "cleo", ["support"])
    now = utcnow()
    with session_scope(settings.database_url) as s:
        s.get(StaffMember, "cleo").locked_until = now + LOCKOUT      # after wrong second-factor codes
        assert services.login_password(s, "cleo", "wrong password!", now).error == "bad_credentials"
        assert services.login_password(s, "cleo", kit.PASSWORD, now).error == "locked"
        assert services.login_password(s, "cleo", kit.PASSWORD, now + LOCKOUT + dt.timedelta(seconds=1)).ok


def test_argon2_parameters_fit_a_two_core_server():
    from argon2 import extract_parameters
    params = extract_parameters(cred.hash_password("a long password 1"))
    assert (params.time_cost, params.memory_cost, params.parallelism) == (2, 19 * 1024, 1)
    assert extract_parameters(cred._DUMMY_HASH) == params                    # unknown users: the same work
    old = __import__("argon2").PasswordHasher().hash("a long password 1")    # the library default profile
    assert cred.check_password(old, "a long password 1") and cred.needs_rehash(old)


def test_wrong_totp_codes_count_towards_the_lockout(settings):
    kit.make_staff(settings, "dave", ["support"])
    now = utcnow()
    with session_scope(settings.database_url) as s:
        for _ in range(MAX_FAILED_LOGINS):
            result = services.login_password(s, "dave", kit.PASSWORD, now)
            if not result.ok:
                break
            row = services.session_for(s, result.session_key, now)
            services.login_totp(s, row, kit._keyring(settings), "000000", now)
        assert s.get(StaffMember, "dave").locked(now)


def test_sessions_end_after_the_idle_timeout(settings):
    secret = kit.make_staff(settings, "erin", ["auditor"])
    now = utcnow()
    with session_scope(settings.database_url) as s:
        key = services.login_password(s, "erin", kit.PASSWORD, now).session_key
        row = services.session_for(s, key, now)
        assert services.login_totp(s, row, kit._keyring(settings), pyotp.TOTP(secret).at(now), now).ok
        later = now + SESSION_IDLE_TIMEOUT - dt.timedelta(seconds=5)
        assert services.session_for(s, key, later) is not None                    # activity keeps it alive
        assert services.session_for(s, key, later + SESSION_IDLE_TIMEOUT + dt.timedelta(seconds=1)) is None
        assert services.session_for(s, key, later) is None                         # ended for good


def test_secrets_are_not_stored_in_clear(settings):
    secret = kit.make_staff(settings, "frank", ["approver"])
    token = kit.make_token(settings, "frank", ["approver"])
    with session_scope(settings.database_url) as s:
        m = s.get(StaffMember, "frank")
        t = s.scalars(__import__("sqlalchemy").select(StaffToken)).one()
        assert secret.encode() not in m.totp_sealed and kit.PASSWORD not in m.password_hash
        assert t.digest == cred.digest(token) and token not in t.digest


def test_tokens_cannot_carry_scopes_the_roles_do_not_grant(settings):
    from admin.errors import Forbidden
    kit.make_staff(settings, "gina", ["support"])
    with pytest.raises(Forbidden):
        kit.make_token(settings, "gina", ["spends:approve"])


def test_production_refuses_the_development_staff_keys():
    from config.settings import Settings, SettingsError
    with pytest.raises(SettingsError, match="STAFF_API_KEYS"):
        Settings.from_env({"CUSTOS_ENV": "production", "STAFF_API_KEYS": "a:" + "k" * 30}).validate()


# -- CSRF on console forms -----------------------------------------------------------------------
def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_every_console_post_needs_the_csrf_token(app, settings):
    secret = kit.make_staff(settings, "hank", ["admin"])
    c = app.test_client()
    c.environ_base.update({"wsgi.url_scheme": "https", "HTTP_HOST": "localhost"})
    form = {"username": "hank", "password": kit.PASSWORD}
    assert c.post("/admin/login", data=form).status_code == 400                      # no token
    assert c.post("/admin/login", data={**form, "csrf_token": "0" * 64}).status_code == 400
    token = _csrf(c.get("/admin/login").text)
    logged = c.post("/admin/login", data={**form, "csrf_token": token})
    assert logged.status_code == 302
    cookie = next(h for h in logged.headers.getlist("Set-Cookie") if h.startswith("custos_admin="))
    assert all(flag in cookie for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/admin"))
    # after the password the token is bound to the session: the pre-login one no longer works
    assert c.post("/admin/totp", data={"code": "123456", "csrf_token": token}).status_code == 400
    token = _csrf(c.get("/admin/totp").text)
    ok = c.post("/admin/totp", data={"code": kit.fresh_code(settings, "hank", secret), "csrf_token": token})
    assert ok.status_code == 302
    page = c.get("/admin/actions/staff_create")
    assert page.status_code == 200 and "What will happen" in page.text
    create = {"staff_id": "ivan", "password": kit.PASSWORD, "roles": "support"}
    assert c.post("/admin/actions/staff_create", data=create).status_code == 400     # forged: nothing created
    cross = c.post("/admin/actions/staff_create", data={**create, "csrf_token": _csrf(page.text)},
                   headers={"Origin": "https://evil.example"})
    assert cross.status_code == 400
    with session_scope(settings.database_url) as s:
        assert s.get(StaffMember, "ivan") is None
    done = c.post("/admin/actions/staff_create", data={**create, "csrf_token": _csrf(page.text)})
    assert done.status_code == 200 and "Created ivan" in done.text
