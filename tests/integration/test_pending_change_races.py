"""An owner's cancel and the job that applies a pending loosening race on PostgreSQL: the
outcome is one of them, told truthfully — never a change marked cancelled whose rules are
in force, nor one applied after its cancel committed.

Each test holds one side's transaction open at the decisive moment, starts the other side
in a thread, waits until PostgreSQL shows it waiting on a lock, then commits the first.
"""
from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import text

from client.sdk import CustosClient, DeviceKey
from cosigner import policy_service
from cosigner.model import Account, PolicyChange
from store.session import engine_for, session_scope
from tests.conftest import flask_transport


@pytest.fixture
def pending_loosening(require_postgres, settings_factory, app_factory):
    from client.phone import PhoneWallet
    settings = settings_factory()
    app = app_factory(settings)
    device = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app))
    device.register()
    aid = device.call("POST", "/v1/accounts", PhoneWallet().account_request("race"))["account_id"]
    device.call("PUT", f"/v1/accounts/{aid}/policy", {"max_per_tx_sat": 1_000})            # tightening: at once
    change = device.call("PUT", f"/v1/accounts/{aid}/policy", {"max_per_tx_sat": 5_000})["pending_change"]
    assert change is not None
    return settings, aid, change["change_id"], dt.datetime.fromisoformat(change["effective_at"])


def _wait_for_lock_waiter(url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    with engine_for(url).connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                        "AND datname = current_database()")).scalar()
            conn.rollback()          # pg_stat_activity is a snapshot per transaction: take a fresh one
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("the other side never waited for the lock")


def _in_thread(fn) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except Exception as err:   # reported by the test
            out["error"] = err
    t = threading.Thread(target=run)
    t.start()
    return t, out


def _state(url, change_id) -> str:
    with session_scope(url) as s:
        return s.get(PolicyChange, change_id).state


def _max_in_force(url, aid) -> int:
    with session_scope(url) as s:
        return policy_service.current(s, aid).max_per_tx_sat


def test_a_cancel_waiting_behind_an_apply_sees_it_applied(pending_loosening):
    settings, aid, change_id, effective = pending_loosening
    url = settings.database_url

    def cancel():
        with session_scope(url) as s:
            return policy_service.cancel_change(s, s.get(Account, aid), change_id, actor="owner",
                                                now=effective).state
    with session_scope(url) as s:
        assert policy_service.apply_change(s, change_id, effective + dt.timedelta(seconds=1)) is True
        t, out = _in_thread(cancel)
        _wait_for_lock_waiter(url)
    t.join(30)
    assert "error" not in out, out
    assert out["value"] == "applied"
    assert _state(url, change_id) == "applied" and _max_in_force(url, aid) == 5_000


def test_an_apply_waiting_behind_a_cancel_applies_nothing(pending_loosening):
    settings, aid, change_id, effective = pending_loosening
    url = settings.database_url

    def apply():
        with session_scope(url) as s:
            return policy_service.apply_change(s, change_id, effective + dt.timedelta(seconds=1))
    with session_scope(url) as s:
        assert policy_service.cancel_change(s, s.get(Account, aid), change_id, actor="owner",
                                            now=effective).state == "cancelled"
        t, out = _in_thread(apply)
        _wait_for_lock_waiter(url)
    t.join(30)
    assert "error" not in out, out
    assert out["value"] is False
    assert _state(url, change_id) == "cancelled" and _max_in_force(url, aid) == 1_000
