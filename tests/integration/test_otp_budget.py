"""OTP guessing budgets (issue #14, M3) on the real stores: the database store on SQLite
and on the suite's database, the Redis store, and concurrent wrong codes against one
case on SQLite (no row locks there) evaluating exactly as many codes as attempts exist."""
from __future__ import annotations

import datetime as dt
import os
import threading

import pytest

from recovery.budget import (OTP_COOLDOWN_BASE, OTP_GUESS_BUDGET, OTP_LEVEL_MEMORY, RedisGuessBudget,
                             SqlGuessBudget)
from recovery.limits import OTP_MAX_ATTEMPTS
from store.session import session_scope

T0 = dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)


def _sqlite(tmp_path) -> str:
    from tests.dbutil import upgrade
    url = f"sqlite:///{tmp_path / 'budget.db'}"
    upgrade(url)
    return url


def _spend(store, url, keys, n, now):
    out = []
    for _ in range(n):
        with session_scope(url) as s:
            out.append(store.reserve(s, keys, now))
    return out


def _cooldown_grows(store, url):
    keys = ["email:abc", "account:acct_1"]
    assert _spend(store, url, keys, OTP_GUESS_BUDGET, T0) == [None] * OTP_GUESS_BUDGET
    wait = _spend(store, url, keys, 1, T0)[0]
    assert wait == int(OTP_COOLDOWN_BASE.total_seconds())
    assert _spend(store, url, ["email:abc"], 1, T0 + dt.timedelta(minutes=30))[0] == 1800   # any key blocks
    assert _spend(store, url, ["email:other"], 1, T0) == [None]                              # others are free
    later = T0 + OTP_COOLDOWN_BASE + dt.timedelta(seconds=1)
    assert _spend(store, url, keys, OTP_GUESS_BUDGET, later) == [None] * OTP_GUESS_BUDGET
    assert _spend(store, url, keys, 1, later)[0] == 2 * int(OTP_COOLDOWN_BASE.total_seconds())   # grows
    quiet = later + 2 * OTP_COOLDOWN_BASE + OTP_LEVEL_MEMORY + dt.timedelta(seconds=5)
    _spend(store, url, keys, OTP_GUESS_BUDGET, quiet)
    assert _spend(store, url, keys, 1, quiet)[0] == int(OTP_COOLDOWN_BASE.total_seconds())   # level forgotten
    with session_scope(url) as s:
        store.clear(s, keys)
    assert _spend(store, url, keys, 1, quiet) == [None]


def test_sql_budget_on_sqlite(tmp_path):
    _cooldown_grows(SqlGuessBudget(), _sqlite(tmp_path))


def test_sql_budget_on_the_suite_database(clean_db):
    _cooldown_grows(SqlGuessBudget(), clean_db)


def test_redis_budget(require_redis, clean_redis, clean_db):
    import redis as redis_lib
    _cooldown_grows(RedisGuessBudget(redis_lib.Redis.from_url(require_redis)), clean_db)


def _case(url, master_key):
    """A decoy case (unknown email) for a registered device, and its context."""
    from devices import services as devices
    from recovery import cases
    from recovery.context import recovery_context
    from store.base import utcnow
    from tests.conftest import make_settings
    ctx = recovery_context(make_settings(url, None, "sqla+sqlite:///:memory:", MASTER_KEY=master_key))
    with session_scope(url) as s:
        device, _ = devices.register(s, key_type="ed25519", public_key=os.urandom(32), platform=None,
                                     push_token=None, now=utcnow())
        case = cases.start(s, ctx, device_id=device.id, email=f"x{os.urandom(4).hex()}@example.org",
                           sealing_key=os.urandom(32), now=utcnow())
        return ctx, device.id, case.id


def _concurrent_wrong_codes(url, master_key, clients=12):
    from recovery import cases
    from store.base import utcnow
    ctx, device_id, case_id = _case(url, master_key)
    outcomes, errors = [], []
    start = threading.Barrier(clients)

    def guess():
        start.wait()
        try:
            with session_scope(url) as s:
                outcomes.append(cases.verify_otp(s, ctx, case_id, device_id, "123456", utcnow()).attempts_left)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(type(exc).__name__)
    threads = [threading.Thread(target=guess) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(outcomes), sorted(errors)


def test_concurrent_wrong_codes_on_sqlite_evaluate_only_the_attempts(tmp_path, master_key):
    """Before: 12 concurrent wrong codes got 9-11 evaluations against a limit of 5."""
    outcomes, errors = _concurrent_wrong_codes(_sqlite(tmp_path), master_key)
    assert outcomes == list(range(OTP_MAX_ATTEMPTS))          # attempts left 4, 3, 2, 1, 0: five evaluations
    assert errors == ["CaseClosed"] * (12 - OTP_MAX_ATTEMPTS)


def test_concurrent_wrong_codes_on_the_suite_database(clean_db, master_key):
    outcomes, errors = _concurrent_wrong_codes(clean_db, master_key)
    assert outcomes == list(range(OTP_MAX_ATTEMPTS))
    assert set(errors) <= {"CaseClosed"} and len(errors) == 12 - OTP_MAX_ATTEMPTS


@pytest.fixture
def master_key():
    import base64
    return base64.b64encode(os.urandom(32)).decode()
