"""Hand-made bad input from the security review (issue #14), each a clear 4xx with a code
and no state change: deep-nested and huge JSON bodies (checked before parsing, also on
the unauthenticated registration), lone surrogates and control characters in strings,
query arguments and path segments, and integers beyond 64 bits."""
from __future__ import annotations

import json

import pytest

from tests.logcapture import captured_logs


def raw(client, method: str, path: str, body: bytes, *, signed: bool = True, keyid: str | None = None):
    """Send `body` bytes as they are (signed like the client would)."""
    url = client.base_url + path
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if signed:
        client.sign(method, url, headers, body, keyid=keyid or client.device_id)
    status, _h, data = client.transport(method, url, headers, body)
    return status, json.loads(data) if data else None


def code(result) -> tuple[int, str]:
    status, data = result
    return status, data["error"]["code"]


@pytest.fixture
def dev(client_factory):
    c = client_factory()
    c.register()
    return c


@pytest.mark.parametrize("body", [b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000])
def test_deep_nesting_is_refused_before_parsing_even_unauthenticated(client_factory, body):
    c = client_factory()
    with captured_logs() as logs:
        status, data = raw(c, "POST", "/v1/devices", body, keyid=c.key.fingerprint())
    assert (status, data["error"]["code"]) == (413, "body_too_complex")
    assert data["error"]["details"]["max_depth"] == 20
    assert "Traceback" not in logs.getvalue() and "RecursionError" not in logs.getvalue()


def test_deep_nesting_on_a_signed_endpoint(dev):
    assert code(raw(dev, "PUT", "/v1/devices/me/push-token", b"[" * 100 + b"]" * 100)) == (413, "body_too_complex")


def test_too_many_items_is_refused(dev):
    body = json.dumps({"push_token": "x", "junk": [0] * 30_000}).encode()
    assert code(raw(dev, "PUT", "/v1/devices/me/push-token", body)) == (413, "body_too_complex")


def test_nesting_within_the_limit_reaches_validation(dev):
    body = json.dumps({"push_token": [[[[["x"]]]]]}).encode()
    assert raw(dev, "PUT", "/v1/devices/me/push-token", body)[0] == 422


@pytest.mark.parametrize("token", ["\ud800", "ok\udfffok", "a\x00b", "tab\tinside", "bell\x07", "c1\x85"])
def test_bad_text_in_push_token(dev, token):
    status, data = dev.request("PUT", "/v1/devices/me/push-token", {"push_token": token})[0::2]
    assert (status, data["error"]["code"]) == (400, "invalid_text")
    assert data["error"]["details"] == {"field": "push_token"}
    assert dev.whoami()["has_push_token"] is False


def test_lone_surrogate_in_invite_display_name(dev):
    status, _h, data = dev.request("POST", "/v1/contacts/invites", {"display_name": "Al\ud83dce"})
    assert (status, data["error"]["code"]) == (400, "invalid_text")
    assert data["error"]["details"]["field"] == "display_name"


def test_a_surrogate_pair_is_fine(dev):
    from tests.messaging_kit import key_upload
    dev.call("PUT", "/v1/keys", key_upload(2)[0])
    status, _h, data = dev.request("POST", "/v1/contacts/invites", {"display_name": "Al\U0001F600ce"})
    assert status == 201, data


def test_bad_text_deep_in_a_body_names_its_path(dev):
    body = {"messages": [{"to": "dev_x", "ciphertext": "aGk=", "type": 1}, {"to": "dev\x00y", "ciphertext": "aGk="}]}
    status, _h, data = dev.request("POST", "/v1/messages", body)
    assert (status, data["error"]["code"], data["error"]["details"]["field"]) == \
        (400, "invalid_text", "messages[1].to")


def test_bad_text_in_a_key(dev):
    status, _h, data = dev.request("PUT", "/v1/devices/me/push-token", {"push_token": "x", "\ud800": 1})
    assert (status, data["error"]["code"]) == (400, "invalid_text")


def test_nul_in_a_path_segment_and_a_query_argument(dev):
    assert code(dev.request("GET", "/v1/recoveries/rcase_%00")[0::2]) == (400, "invalid_text")
    assert code(dev.request("GET", "/v1/messages?limit=%00")[0::2]) == (400, "invalid_text")


def test_unauthenticated_bad_text_is_refused_before_auth(client_factory):
    c = client_factory()
    body = json.dumps({"key_type": "ed25519", "public_key": c.key.public_b64(), "push_token": "\ud800"}).encode()
    assert code(raw(c, "POST", "/v1/devices", body, keyid=c.key.fingerprint())) == (400, "invalid_text")


# -- integers beyond 64 bits -------------------------------------------------------------
@pytest.fixture
def owned(settings_factory, app_factory, master_key):
    """A staff key and a device owning an account (bitcoind is down: the import waits)."""
    from client.phone import PhoneWallet
    from tests.api.recovery_kit import STAFF_ENV, account, device
    app = app_factory(settings_factory(STAFF_API_KEYS=STAFF_ENV, MASTER_KEY=master_key))
    owner = device(app)
    return app, owner, account(owner, PhoneWallet())["account_id"]


@pytest.mark.parametrize("value", [2 ** 63, 2 ** 64, 2 ** 53])
def test_audit_before_seq_beyond_range(owned, value):
    from tests.api.recovery_kit import staff_call
    app, _owner, _aid = owned
    status, data = staff_call(app, "GET", f"/v1/admin/audit?before_seq={value}")
    assert (status, data["error"]["code"]) == (422, "validation_error")
    assert staff_call(app, "GET", f"/v1/admin/audit?before_seq={2 ** 53 - 1}")[0] == 200


@pytest.mark.parametrize("value", [2 ** 63, 2 ** 63 + 1, 10 ** 30])
def test_backup_version_beyond_range(owned, value):
    _app, owner, aid = owned
    assert code(owner.request("GET", f"/v1/accounts/{aid}/backups/{value}")[0::2]) == (404, "not_found")
    status, _h, data = owner.request("PUT", f"/v1/accounts/{aid}/backups",
                                     {"version": value, "sha256": "0" * 64, "blob": "aGk="})
    assert (status, data["error"]["code"]) == (422, "validation_error")


def test_a_p256_high_s_signature_is_refused(client_factory):
    """Issue #14: the other form (r, n - s) of a valid P-256 signature was accepted too."""
    import base64
    from devices.keys import P256_ORDER
    c = client_factory("ecdsa-p256")
    c.register()
    url = "http://localhost/v1/devices/me"
    headers = c.sign("GET", url, {}, b"", keyid=c.device_id)               # the client sends low S
    label, _, rest = headers["Signature"].partition("=:")
    raw = base64.b64decode(rest.rstrip(":"))
    high = raw[:32] + (P256_ORDER - int.from_bytes(raw[32:], "big")).to_bytes(32, "big")
    mauled = {**headers, "Signature": f"{label}=:{base64.b64encode(high).decode()}:"}
    status, _h, data = c.transport("GET", url, mauled, b"")
    assert (status, json.loads(data)["error"]["code"]) == (401, "signature_invalid")
    assert c.transport("GET", url, headers, b"")[0] == 200
