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
