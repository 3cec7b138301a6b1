"""The error envelope and the exception → status table."""
import pytest
from flask import Flask

from app.auth.errors import AuthError, NonceReused
from app.errors import ApiError, ERRORS, envelope, register_error_handlers, status_for
from devices.errors import DeviceNotFound, DeviceRevoked, InvalidPublicKey, KeyAlreadyRegistered


@pytest.mark.parametrize("exc,status", [
    (NonceReused("x"), 401), (AuthError("x", code="unknown_device"), 401), (InvalidPublicKey("x"), 400),
    (DeviceNotFound("x"), 404), (DeviceRevoked("x"), 401), (KeyAlreadyRegistered("x"), 409),
    (ValueError("x"), None),
])
def test_status_chosen_by_class(exc, status):
    assert status_for(exc) == status


def make_app():
    app = Flask(__name__)
    register_error_handlers(app)

    @app.get("/nonce")
    def nonce():
        raise NonceReused("this nonce was already used")

    @app.get("/api")
    def api():
        raise ApiError("slow down", status=429, code="rate_limited", details={"retry_after": 5},
                       headers={"Retry-After": "5"})

    @app.get("/boom")
    def boom():
        raise RuntimeError("db password=hunter2 exploded")
    return app


def test_domain_error_envelope():
    resp = make_app().test_client().get("/nonce")
    assert resp.status_code == 401
    assert resp.json == {"error": {"code": "nonce_reused", "message": "this nonce was already used", "details": {}}}


def test_api_error_keeps_headers_and_details():
    resp = make_app().test_client().get("/api")
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "5"
    assert resp.json["error"]["details"] == {"retry_after": 5}


def test_unexpected_error_is_an_opaque_500():
    resp = make_app().test_client().get("/boom")
    assert resp.status_code == 500
    assert resp.json == {"error": {"code": "internal_error", "message": "internal error", "details": {}}}
    assert b"hunter2" not in resp.data


def test_werkzeug_errors_use_the_envelope():
    resp = make_app().test_client().get("/missing")
    assert resp.status_code == 404 and resp.json["error"]["code"] == "not_found"
    resp = make_app().test_client().post("/nonce")
    assert resp.status_code == 405 and "GET" in resp.headers["Allow"]
    assert resp.json["error"]["code"] == "method_not_allowed"


def test_every_table_entry_is_an_exception_class():
    assert all(isinstance(k, type) and issubclass(k, BaseException) for k in ERRORS)
    assert envelope  # the helper exists for views that build errors directly
