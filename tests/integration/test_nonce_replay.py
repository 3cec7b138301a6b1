"""Replay protection holds across API processes that share Redis (and, in embedded mode,
across apps that share the database)."""
from __future__ import annotations

import json

from client.sdk import CustosClient, DeviceKey
from tests.conftest import flask_transport


def replay_across(app_a, app_b):
    c = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app_a))
    c.register()
    url = "http://localhost/v1/devices/me"
    headers = c.sign("GET", url, {}, b"", keyid=c.device_id)
    assert flask_transport(app_a)("GET", url, dict(headers), b"")[0] == 200
    status, _, raw = flask_transport(app_b)("GET", url, dict(headers), b"")
    return status, json.loads(raw)["error"]["code"]


def test_replay_blocked_across_two_apps_sharing_redis(require_redis, app_factory, settings_factory):
    app_a, app_b = app_factory(settings_factory()), app_factory(settings_factory())
    assert type(app_a.extensions["custos"].nonces).__name__ == "RedisNonceStore"
    assert replay_across(app_a, app_b) == (401, "nonce_reused")


def test_replay_blocked_across_two_apps_sharing_the_database(app_factory, settings_factory, clean_db):
    from config.settings import Settings
    s = settings_factory()
    embedded = Settings.from_env({"CUSTOS_ENV": "test", "DATABASE_URL": clean_db, "LOG_JSON": "0",
                                  "BROKER_URL": s.broker_url, "LOG_LEVEL": "WARNING"})
    app_a, app_b = app_factory(embedded), app_factory(embedded)
    assert type(app_a.extensions["custos"].nonces).__name__ == "SqlNonceStore"
    assert replay_across(app_a, app_b) == (401, "nonce_reused")


def _signed_at(c, created: int, nonce: str):
    import datetime as dt
    url = "http://localhost/v1/devices/me"
    return c.sign("GET", url, {}, b"", keyid=c.device_id, nonce=nonce,
                  created=dt.datetime.fromtimestamp(created, dt.timezone.utc))


def _remaining(app, device_id: str, nonce: str) -> float:
    """Seconds the stored nonce has left (Redis TTL, or the database row's expiry)."""
    from devices.nonces import UsedNonce, nonce_key
    from store.base import utcnow
    from store.session import session_scope
    d = app.extensions["custos"]
    if d.redis is not None:
        return d.redis.pttl("custos:nonce:" + nonce_key(device_id, nonce)) / 1000
    with session_scope(d.settings.database_url) as s:
        return (s.get(UsedNonce, nonce_key(device_id, nonce)).expires_at - utcnow()).total_seconds()


def test_a_nonce_outlives_its_signature_by_the_margin(app, client_factory):
    """Issue #14, L4: `created = now + window` stayed acceptable until the nonce was gone."""
    import time
    from app.auth.device import NONCE_TTL_MARGIN
    window = app.extensions["custos"].settings.signature_window
    c = client_factory()
    c.register()
    created, nonce = int(time.time()) + window - 1, "n" * 24
    headers = _signed_at(c, created, nonce)
    assert flask_transport(app)("GET", "http://localhost/v1/devices/me", dict(headers), b"")[0] == 200
    acceptable_for = created + window - time.time()
    assert _remaining(app, c.device_id, nonce) >= acceptable_for + NONCE_TTL_MARGIN - 2


def test_created_is_compared_with_sub_second_precision(app, client_factory, monkeypatch):
    import time
    import app.auth.device as device_auth
    window = app.extensions["custos"].settings.signature_window
    c = client_factory()
    c.register()
    created = int(time.time())
    headers = _signed_at(c, created, "m" * 24)
    monkeypatch.setattr(device_auth, "clock", lambda: created + window + 0.5)   # half a second too late
    status, _, raw = flask_transport(app)("GET", "http://localhost/v1/devices/me", dict(headers), b"")
    assert (status, json.loads(raw)["error"]["code"]) == (401, "signature_expired")
