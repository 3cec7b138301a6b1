"""What every response gets from create_app's hooks (request id, default headers), the
lazy cookie session, and the async-view rule of CustosFlask.ensure_sync."""
from __future__ import annotations

import re

from flask import Response, session

from app import CustosFlask


def test_request_id_is_echoed_when_valid_and_generated_otherwise(app):
    client = app.test_client()
    assert client.get("/v1/health", headers={"X-Request-Id": "abc-123_x"}).headers["X-Request-Id"] == "abc-123_x"
    for bad in ({}, {"X-Request-Id": "no spaces"}, {"X-Request-Id": "x" * 65}):
        rid = client.get("/v1/health", headers=bad).headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
    assert client.get("/v1/health").headers["X-Request-Id"] != client.get("/v1/health").headers["X-Request-Id"]


def test_default_headers_are_added_once_and_never_override_a_view(app):
    @app.route("/v1/test-own-headers")
    def own():
        return Response("x", headers={"Cache-Control": "max-age=5", "X-Content-Type-Options": "other",
                                      "X-Request-Id": "from-view"})

    client = app.test_client()
    plain = client.get("/v1/health")
    assert plain.headers.getlist("Cache-Control") == ["no-store"]
    assert plain.headers.getlist("X-Content-Type-Options") == ["nosniff"]
    assert len(plain.headers.getlist("X-Request-Id")) == 1
    own_resp = client.get("/v1/test-own-headers", headers={"X-Request-Id": "rid-1"})
    assert own_resp.headers.getlist("Cache-Control") == ["max-age=5"]
    assert own_resp.headers.getlist("X-Content-Type-Options") == ["other"]
    assert own_resp.headers.getlist("X-Request-Id") == ["rid-1"]      # the hook's id replaces the view's


def test_a_request_with_the_session_cookie_still_gets_its_session(app):
    @app.route("/v1/test-session")
    def read_session():
        return {"value": session.get("value")}

    cookie = app.session_interface.get_signing_serializer(app).dumps({"value": 7})
    client = app.test_client()
    name = app.config["SESSION_COOKIE_NAME"]
    assert client.get("/v1/test-session").get_json() == {"value": None}
    client.set_cookie(name, cookie)
    assert client.get("/v1/test-session").get_json() == {"value": 7}
    client.delete_cookie(name)
    client.set_cookie("other", "1")                   # a Cookie header without the session's
    assert client.get("/v1/test-session").get_json() == {"value": None}


def test_ensure_sync_keeps_plain_functions_and_wraps_coroutines(app):
    def plain():
        return 1

    async def coro():
        return 2

    assert isinstance(app, CustosFlask)
    assert app.ensure_sync(plain) is plain
    try:
        wrapped = app.ensure_sync(coro)     # Flask's own path: wrap it...
    except RuntimeError as exc:             # ...or, without asgiref, say async views need it
        assert "async" in str(exc)
    else:
        assert wrapped is not coro and wrapped() == 2


def test_the_session_is_saved_read_or_cleared_as_flask_does(app):
    @app.route("/v1/test-session")
    def read_session():
        return {"value": session.get("value")}

    @app.route("/v1/test-session-set")
    def set_session():
        session["value"] = 3
        return {}

    @app.route("/v1/test-session-clear")
    def clear_session():
        session.clear()
        return {}

    client = app.test_client()
    name = app.config["SESSION_COOKIE_NAME"]
    plain = client.get("/v1/health")
    assert "Set-Cookie" not in plain.headers and "Cookie" not in plain.headers.get("Vary", "")
    assert "Cookie" in client.get("/v1/test-session").headers.get("Vary", "")        # read: Vary
    saved = client.get("/v1/test-session-set")
    assert saved.headers["Set-Cookie"].startswith(f"{name}=") and "Cookie" in saved.headers["Vary"]
    assert client.get("/v1/test-session").get_json() == {"value": 3}
    cleared = client.get("/v1/test-session-clear")
    assert cleared.headers["Set-Cookie"].startswith(f"{name}=;")                   # deleted
    assert client.get("/v1/test-session").get_json() == {"value": None}
