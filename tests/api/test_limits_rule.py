"""One rule for limits (issue #15): a body over the global size → 413; a field or list
over its documented bound → 422 `validation_error`, naming the field and the bound."""
from __future__ import annotations

import base64
import hashlib

from client.phone import PhoneWallet
from client.recovery import RecoveryClient
from tests.api.recovery_kit import account, device
from tests.messaging_kit import befriend, registered
from tests.conftest import flask_transport


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _err(result):
    status, _h, data = result
    return status, data["error"]["code"], data["error"]["details"]


def test_a_list_over_its_bound_names_field_and_bound(app):
    a, b = registered(flask_transport(app)), registered(flask_transport(app))
    befriend(a, b)
    env = [{"to": b.device_id, "ciphertext": b64(b"x")}] * 51
    status, code, details = _err(a.request("POST", "/v1/messages", {"messages": env}))
    assert (status, code) == (422, "validation_error")
    assert "50" in str(details["fields"]["json"]["messages"])


def test_a_ciphertext_over_its_size(app):
    a, b = registered(flask_transport(app)), registered(flask_transport(app))
    befriend(a, b)
    env = [{"to": b.device_id, "ciphertext": b64(b"x")}, {"to": b.device_id, "ciphertext": b64(b"\0" * 65537)}]
    assert _err(a.request("POST", "/v1/messages", {"messages": env})) == \
        (422, "validation_error", {"field": "messages[1].ciphertext", "max_bytes": 65536})


def test_backups_one_byte_over_and_a_body_over_the_global_size(settings_factory, app_factory, master_key):
    app = app_factory(settings_factory(MASTER_KEY=master_key))
    owner = RecoveryClient.like(device(app))
    aid = account(owner, PhoneWallet())["account_id"]
    blob = b"\0" * ((1 << 20) + 1)
    body = {"version": 1, "sha256": hashlib.sha256(blob).hexdigest(), "blob": b64(blob)}
    assert _err(owner.request("PUT", f"/v1/accounts/{aid}/backups", body)) == \
        (422, "validation_error", {"field": "blob", "max_bytes": 1 << 20})
    huge = b"\0" * (2 << 20)
    body = {"version": 1, "sha256": hashlib.sha256(huge).hexdigest(), "blob": b64(huge)}
    status, code, _details = _err(owner.request("PUT", f"/v1/accounts/{aid}/backups", body))
    assert (status, code) == (413, "payload_too_large")
