"""Console login throttles (issue #14, M4 + L7): limits per address before any argon2
work, failures per address and username, a username-wide budget that tells staff and
spares the member's known address; unknown usernames are throttled exactly like real
ones. Through the console's own form (CSRF token included), on the suite's limiter
storage (Redis when configured)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from admin import credentials as cred
from audit.model import AuditEvent
from store.session import session_scope
from tests.browser import kit


def _login(app, ip: str, username: str, password: str):
    c = app.test_client()
    env = {"REMOTE_ADDR": ip}
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/admin/login", environ_base=env).text).group(1)
    return c.post("/admin/login", data={"username": username, "password": password, "csrf_token": token},
                  environ_base=env)


def _page(response) -> str:
    """The page without what differs per request (CSRF token, the wait, the name typed)."""
    text = re.sub(r'name="csrf_token" value="[^"]+"', "", response.text)
    return re.sub(r"\d+ seconds|value=\"(gina|ghost)\"", "", text)


@pytest.fixture
def hashes(monkeypatch):
    """Counts argon2 verifications (they still run)."""
    calls, real = [], cred.check_password
    monkeypatch.setattr(cred, "check_password", lambda *a: calls.append(1) or real(*a))
    return calls


def test_failures_per_address_and_username_throttle_known_and_unknown_alike(app, settings, hashes):
    kit.make_staff(settings, "gina", ["support"])
    for name in ("gina", "ghost"):
        answers = [_login(app, "10.0.0.1", name, "wrong password!").status_code for _ in range(6)]
        assert answers == [401] * 5 + [429], name
    throttled = [_login(app, "10.0.0.1", n, "wrong password!") for n in ("gina", "ghost")]
    assert {r.status_code for r in throttled} == {429}
    assert all(r.headers["Retry-After"].isdigit() for r in throttled)
    assert len({_page(r) for r in throttled}) == 1                                # the same page
    assert len(hashes) == 10                                                      # no argon2 once throttled
    assert _login(app, "10.0.0.2", "gina", kit.PASSWORD).status_code == 302       # not locked out elsewhere
    assert _login(app, "10.0.0.1", "gina", kit.PASSWORD).status_code == 429       # still slowed here


def test_attempts_per_address_are_capped_before_hashing(settings_factory, app_factory, hashes):
    app = app_factory(settings_factory(RATELIMIT_CONSOLE_LOGIN_IP="4/minute"))
    answers = [_login(app, "10.0.0.3", f"user{i}", "wrong password!").status_code for i in range(6)]
    assert answers == [401] * 4 + [429, 429] and len(hashes) == 4


def test_the_username_budget_tells_staff_and_spares_the_members_known_address(settings_factory, app_factory):
    settings = settings_factory(RATELIMIT_CONSOLE_LOGIN_USER="3/hour")
    app = app_factory(settings)
    kit.make_staff(settings, "hugo", ["support"])
    assert _login(app, "10.1.0.9", "hugo", kit.PASSWORD).status_code == 302       # hugo's usual address
    for i in range(3):                                                            # a distributed guesser
        assert _login(app, f"10.2.0.{i}", "hugo", "wrong password!").status_code == 401
    assert _login(app, "10.2.0.99", "hugo", kit.PASSWORD).status_code == 429      # a new address must wait
    assert _login(app, "10.1.0.9", "hugo", kit.PASSWORD).status_code == 302       # the known one works
    with session_scope(settings.database_url) as s:
        notices = s.scalars(select(AuditEvent).where(AuditEvent.action == "staff.login_throttled")).all()
    assert [e.subject for e in notices] == ["login:hugo"]
