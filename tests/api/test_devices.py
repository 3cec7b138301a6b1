"""Device registration and RFC 9421 request authentication through the HTTP API."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from client.sdk import CustosClient, DeviceKey
from tests.conftest import flask_transport


def error_code(resp_tuple):
    status, _headers, data = resp_tuple
    return status, data["error"]["code"]


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa-p256"])
def test_register_then_signed_whoami(client_factory, kind):
    c = client_factory(kind)
    reg = c.register(platform="ios")
    assert reg["device_id"].startswith("dev_")
    assert reg["key_type"] == kind
    assert reg["key_fingerprint"] == c.key.fingerprint()
    me = c.whoami()
    assert me["device_id"] == reg["device_id"] and me["platform"] == "ios"


def test_registration_is_idempotent_per_key(client_factory):
    c = client_factory()
    first = c.register()
    status, _, again = c.request("POST", "/v1/devices", {"key_type": "ed25519", "public_key": c.key.public_b64()},
                                 keyid=c.key.fingerprint())
    assert status == 200 and again["device_id"] == first["device_id"]


def test_registration_signed_by_another_key_is_refused(client_factory):
    victim, attacker = DeviceKey.generate(), client_factory()
    body = {"key_type": "ed25519", "public_key": victim.public_b64()}
    # attacker signs with its own key but claims the victim's fingerprint as keyid
    status, code = error_code(attacker.request("POST", "/v1/devices", body, keyid=victim.fingerprint()))
    assert (status, code) == (401, "signature_invalid")
    # and with its own fingerprint: keyid does not match the key being registered
    status, code = error_code(attacker.request("POST", "/v1/devices", body, keyid=attacker.key.fingerprint()))
    assert (status, code) == (401, "signature_invalid")


def test_unsigned_registration_is_refused(client_factory):
    c = client_factory()
    status, code = error_code(c.request("POST", "/v1/devices",
                                        {"key_type": "ed25519", "public_key": c.key.public_b64()}, signed=False))
    assert (status, code) == (401, "signature_missing")


def test_registration_with_mismatched_key_type_is_a_clear_400(client_factory):
    c = client_factory("ed25519")
    status, code = error_code(c.request("POST", "/v1/devices",
                                        {"key_type": "ecdsa-p256", "public_key": c.key.public_b64()},
                                        keyid=c.key.fingerprint()))
    assert (status, code) == (400, "invalid_public_key")


def test_forged_signature_is_refused(client_factory):
    c = client_factory()
    c.register()
    forger = client_factory()
    forger.device_id = c.device_id  # signs as the victim with the wrong key
    status, code = error_code(forger.request("GET", "/v1/devices/me"))
    assert (status, code) == (401, "signature_invalid")


def test_replayed_request_is_refused(client_factory, app):
    c = client_factory()
    c.register()
    url = "http://localhost/v1/devices/me"
    headers = c.sign("GET", url, {}, b"", keyid=c.device_id)
    assert c.transport("GET", url, dict(headers), b"")[0] == 200
    status, _, raw = c.transport("GET", url, dict(headers), b"")
    assert status == 401 and json.loads(raw)["error"]["code"] == "nonce_reused"


def test_expired_and_future_signatures_are_refused(client_factory):
    c = client_factory()
    c.register()
    url = "http://localhost/v1/devices/me"
    for skew in (-301, +301):
        created = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=skew)
        headers = c.sign("GET", url, {}, b"", keyid=c.device_id, created=created)
        status, _, raw = c.transport("GET", url, headers, b"")
        assert status == 401 and json.loads(raw)["error"]["code"] == "signature_expired"


def test_wrong_digest_is_refused(client_factory):
    c = client_factory()
    c.register()
    url = "http://localhost/v1/devices/me/push-token"
    body = json.dumps({"push_token": "abc"}).encode()
    headers = c.sign("PUT", url, {"Content-Type": "application/json"}, body, keyid=c.device_id)
    tampered = json.dumps({"push_token": "evil"}).encode()
    status, _, raw = c.transport("PUT", url, headers, tampered)
    assert status == 401 and json.loads(raw)["error"]["code"] == "digest_mismatch"


def test_body_not_covered_by_the_signature_is_refused(client_factory):
    c = client_factory()
    c.register()
    url = "http://localhost/v1/devices/me/push-token"
    # sign without a body (no content-digest), then send one
    headers = c.sign("PUT", url, {"Content-Type": "application/json"}, b"", keyid=c.device_id)
    status, _, raw = c.transport("PUT", url, headers, b'{"push_token": "x"}')
    assert status == 401 and json.loads(raw)["error"]["code"] == "signature_incomplete"


def test_unknown_device_is_refused(client_factory):
    c = client_factory()
    c.device_id = "dev_" + "0" * 32
    status, code = error_code(c.request("GET", "/v1/devices/me"))
    assert (status, code) == (401, "unknown_device")


def test_revoked_device_is_refused_and_cannot_reregister(client_factory):
    c = client_factory()
    c.register()
    status, _, _ = c.request("DELETE", "/v1/devices/me")
    assert status == 204
    status, code = error_code(c.request("GET", "/v1/devices/me"))
    assert (status, code) == (401, "device_revoked")
    status, code = error_code(c.request("POST", "/v1/devices",
                                        {"key_type": "ed25519", "public_key": c.key.public_b64()},
                                        keyid=c.key.fingerprint()))
    assert (status, code) == (409, "key_revoked")


def test_push_token_set_and_cleared(client_factory):
    c = client_factory()
    c.register()
    assert c.set_push_token("token-123")["has_push_token"] is True
    assert c.set_push_token(None)["has_push_token"] is False


def test_malformed_json_is_400(app):
    resp = app.test_client().post("/v1/devices", data="{not json", content_type="application/json")
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "malformed_json"


def test_validation_error_names_fields(app):
    resp = app.test_client().post("/v1/devices", json={"key_type": "rsa"})
    assert resp.status_code == 422
    fields = resp.json["error"]["details"]["fields"]["json"]
    assert "key_type" in fields and "public_key" in fields


def test_unknown_route_is_404_envelope(app):
    resp = app.test_client().get("/v1/no-such-thing")
    assert resp.status_code == 404
    assert resp.json["error"]["code"] == "not_found"


def test_wrong_method_is_405_with_allow(app):
    resp = app.test_client().post("/v1/health")
    assert resp.status_code == 405
    assert resp.json["error"]["code"] == "method_not_allowed"
    assert "GET" in resp.headers["Allow"]


def test_oversized_body_is_413(app_factory, settings_factory):
    app = app_factory(settings_factory(MAX_CONTENT_LENGTH=2048))
    resp = app.test_client().post("/v1/devices", data="x" * 5000, content_type="application/json")
    assert resp.status_code == 413
    assert resp.json["error"]["code"] == "payload_too_large"


def test_device_rate_limit_gives_429_with_retry_after(app_factory, settings_factory):
    from tests.conftest import flask_transport
    app = app_factory(settings_factory(RATELIMIT_DEVICE="3/minute"))
    c = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app))
    c.register()
    statuses = [c.request("GET", "/v1/devices/me")[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    status, headers, data = c.request("GET", "/v1/devices/me")
    assert status == 429 and data["error"]["code"] == "rate_limited"
    assert int(headers["Retry-After"]) > 0


def test_ip_rate_limit_gives_429(app_factory, settings_factory):
    app = app_factory(settings_factory(RATELIMIT_IP="2/minute"))
    tc = app.test_client()
    codes = [tc.get("/v1/devices/me").status_code for _ in range(3)]
    assert codes == [401, 401, 429]
    resp = tc.get("/v1/devices/me")
    assert resp.json["error"]["code"] == "rate_limited" and "Retry-After" in resp.headers


def test_client_certificate_required_when_configured(app_factory, settings_factory):
    from tests.conftest import flask_transport
    app = app_factory(settings_factory(REQUIRE_CLIENT_CERT="true"))
    c = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app))
    status, _, data = c.request("POST", "/v1/devices", {"key_type": "ed25519", "public_key": c.key.public_b64()},
                                keyid=c.key.fingerprint())
    assert status == 401 and data["error"]["code"] == "client_certificate_required"
    status, _, data = c.request("POST", "/v1/devices", {"key_type": "ed25519", "public_key": c.key.public_b64()},
                                keyid=c.key.fingerprint(), headers={"X-Client-Cert-Fingerprint": "ab:cd"})
    assert status == 201


def test_registration_writes_an_audit_event(client_factory, app):
    from app.extensions import db
    from audit.model import AuditEvent
    from audit.services import verify
    c = client_factory()
    c.register()
    with app.app_context():
        events = db.session.query(AuditEvent).filter_by(subject=c.device_id).all()
        assert [e.action for e in events] == ["device.registered"]
        assert verify(db.session).ok


def test_openapi_document_and_docs(app):
    tc = app.test_client()
    spec = tc.get("/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert "/v1/devices" in spec["paths"] and "/v1/devices/me" in spec["paths"]
    assert spec["paths"]["/v1/devices/me"]["get"]["security"] == [{"HttpSignature": []}]
    assert tc.get("/v1/docs").status_code == 200
    assert tc.get("/v1/docs/static/swagger-ui-bundle.js").status_code == 200


def test_non_json_body_is_415(app):
    resp = app.test_client().post("/v1/devices", data="key_type=ed25519", content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 415
    assert resp.json["error"]["code"] == "unsupported_media_type"


def test_registrations_per_address_are_budgeted(app_factory, settings_factory):
    """RATELIMIT_REGISTER per client address: the registration past the budget is a 429
    with Retry-After and stores no device; an already registered key is not re-counted
    into a new device either."""
    from devices.model import Device
    from store.session import session_scope
    settings = settings_factory(RATELIMIT_REGISTER="3/minute")
    app = app_factory(settings)
    clients = [CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app))
               for _ in range(4)]
    for c in clients[:3]:
        c.register()
    status, headers, data = clients[3].request("POST", "/v1/devices", {"key_type": "ed25519",
                                                                      "public_key": clients[3].key.public_b64()},
                                               keyid=clients[3].key.fingerprint())
    assert status == 429 and data["error"]["code"] == "rate_limited"
    assert int({k.lower(): v for k, v in headers.items()}["retry-after"]) > 0
    with session_scope(settings.database_url) as s:
        assert s.query(Device).count() == 3
