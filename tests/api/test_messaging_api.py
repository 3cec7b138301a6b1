"""The messaging API through HTTP (Flask test client): prekeys, queues, contacts, errors."""
from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import func, select

from app.extensions import db
from messaging.model import Message, Notification
from tests.conftest import flask_transport
from tests.messaging_kit import b64, befriend, key_upload, registered


@pytest.fixture
def transport(app):
    return flask_transport(app)


@pytest.fixture
def pair(transport):
    a, b = registered(transport), registered(transport)
    befriend(a, b)
    return a, b


def code_of(resp):
    status, _h, data = resp
    return status, (data or {}).get("error", {}).get("code")


def count_rows(app, model, **where):
    with app.app_context():
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return db.session.scalar(q)


# -- prekeys -----------------------------------------------------------------------
def test_upload_count_and_bundle_consumes_one_prekey(pair):
    a, b = pair
    assert a.key_count() == 10
    first = b.fetch_bundle(a.device_id)
    second = b.fetch_bundle(a.device_id)
    assert first["one_time_prekey"]["key_id"] != second["one_time_prekey"]["key_id"]
    assert first["last_resort"] is False and first["registration_id"] == 42
    assert len(base64.b64decode(first["identity_key"])) == 33
    assert a.key_count() == 8


def test_empty_pool_serves_last_resort_and_asks_owner_to_replenish(app, transport):
    a, b = registered(transport, prekeys=1), registered(transport)
    befriend(a, b)
    assert b.fetch_bundle(a.device_id)["last_resort"] is False
    bundle = b.fetch_bundle(a.device_id)
    assert bundle["last_resort"] is True and bundle["one_time_prekey"]["key_id"] == 0xFFFFFF
    assert count_rows(app, Notification, device_id=a.device_id, kind="replenish") == 1


def test_bad_signed_prekey_signature_is_400_and_changes_nothing(transport):
    c = registered(transport)
    body, _ = key_upload(5)
    sig = bytearray(base64.b64decode(body["signed_prekey"]["signature"]))
    sig[0] ^= 1
    body["signed_prekey"]["signature"] = b64(bytes(sig))
    assert code_of(c.request("PUT", "/v1/keys", body)) == (400, "invalid_signed_prekey_signature")
    assert c.key_count() == 10


@pytest.mark.parametrize("mutate,code", [
    (lambda b: b.update(identity_key="not base64!"), "invalid_keys"),
    (lambda b: b.update(identity_key=b64(b"\x05" + b"\x01" * 31)), "invalid_keys"),
    (lambda b: b["one_time_prekeys"].append(dict(b["one_time_prekeys"][0])), "invalid_keys"),
])
def test_malformed_key_uploads_are_400(transport, mutate, code):
    c = registered(transport)
    body, _ = key_upload(3)
    mutate(body)
    assert code_of(c.request("PUT", "/v1/keys", body)) == (400, code)


def test_more_than_100_prekeys_is_refused(transport):
    c = registered(transport)
    body, _ = key_upload(101)
    status, _h, data = c.request("PUT", "/v1/keys", body)
    assert status == 422 and "one_time_prekeys" in data["error"]["details"]["fields"]["json"]


def test_first_upload_needs_signed_prekey_and_last_resort(transport):
    from tests.messaging_kit import messaging_client
    c = messaging_client(transport=transport)
    c.register()
    body, _ = key_upload(3)
    del body["last_resort_key"]
    assert code_of(c.request("PUT", "/v1/keys", body)) == (400, "incomplete_keys")


def test_new_signed_prekey_supersedes_and_is_served(pair):
    a, b = pair
    body, identity = key_upload(3, signed_id=1)
    a.upload_keys(body)
    new, _ = key_upload(3, signed_id=2, identity=identity)
    del new["one_time_prekeys"]
    a.upload_keys(new)
    assert b.fetch_bundle(a.device_id)["signed_prekey"]["key_id"] == 2


def test_bundle_of_a_non_contact_is_403(transport):
    a, stranger = registered(transport), registered(transport)
    assert code_of(stranger.request("GET", f"/v1/keys/{a.device_id}")) == (403, "not_permitted")
    assert a.key_count() == 10


def test_prekey_fetch_is_rate_limited_per_requester(settings_factory, app_factory):
    app = app_factory(settings_factory(RATELIMIT_PREKEY_FETCH="3/hour"))
    t = flask_transport(app)
    a, b = registered(t), registered(t)
    befriend(a, b)
    for _ in range(3):
        b.fetch_bundle(a.device_id)
    status, headers, data = b.request("GET", f"/v1/keys/{a.device_id}")
    assert status == 429 and data["error"]["code"] == "rate_limited" and int(headers["Retry-After"]) > 0


def test_prekey_fetch_is_rate_limited_per_target(settings_factory, app_factory):
    app = app_factory(settings_factory(RATELIMIT_PREKEY_TARGET="2/hour"))
    t = flask_transport(app)
    a, b, c = registered(t), registered(t), registered(t)
    befriend(a, b)
    befriend(a, c)
    b.fetch_bundle(a.device_id)
    c.fetch_bundle(a.device_id)
    assert code_of(c.request("GET", f"/v1/keys/{a.device_id}")) == (429, "rate_limited")


# -- queues --------------------------------------------------------------------------
def send(c, to, payload: bytes, kind=1):
    return c.send_envelopes([{"to": to, "ciphertext": b64(payload), "type": kind}])


def test_queue_order_paging_and_ack(pair):
    a, b = pair
    guids = [send(a, b.device_id, f"m{i}".encode())[0]["guid"] for i in range(5)]
    page = b.fetch_messages(limit=3)
    assert [m["guid"] for m in page["messages"]] == guids[:3] and page["more"] is True
    assert {m["from"] for m in page["messages"]} == {a.device_id}
    assert base64.b64decode(page["messages"][0]["ciphertext"]) == b"m0"
    again = b.fetch_messages(limit=3)
    assert [m["guid"] for m in again["messages"]] == guids[:3], "unacked messages keep their guids"
    for g in guids[:3]:
        b.ack(g)
    rest = b.fetch_messages(limit=3)
    assert [m["guid"] for m in rest["messages"]] == guids[3:] and rest["more"] is False


def test_ack_is_idempotent_and_scoped_to_the_recipient(pair):
    a, b = pair
    guid = send(a, b.device_id, b"x")[0]["guid"]
    assert a.request("DELETE", f"/v1/messages/{guid}")[0] == 204   # not a's message: no effect
    assert len(b.fetch_messages()["messages"]) == 1
    assert b.request("DELETE", f"/v1/messages/{guid}")[0] == 204
    assert b.request("DELETE", f"/v1/messages/{guid}")[0] == 204
    assert b.request("DELETE", "/v1/messages/no-such-guid")[0] == 204
    assert b.fetch_messages()["messages"] == []


def test_batched_send_fetch_and_ack(pair):
    """50 envelopes in one send, the page fetched with `more`, the page acknowledged in
    one call; acknowledging again deletes nothing (idempotent)."""
    a, b = pair
    sent = a.send_envelopes([{"to": b.device_id, "ciphertext": b64(f"m{i}".encode())} for i in range(50)])
    guids = [m["guid"] for m in sent]
    assert len(set(guids)) == 50
    page = b.fetch_messages(limit=30)
    assert [m["guid"] for m in page["messages"]] == guids[:30] and page["more"] is True
    assert [base64.b64decode(m["ciphertext"]) for m in page["messages"]][:2] == [b"m0", b"m1"]
    assert b.call("POST", "/v1/messages/ack", {"guids": guids[:30]}) == {"deleted": 30}
    assert b.call("POST", "/v1/messages/ack", {"guids": guids[:30]}) == {"deleted": 0}
    rest = b.fetch_messages(limit=100)
    assert [m["guid"] for m in rest["messages"]] == guids[30:] and rest["more"] is False
    assert b.ack_many(guids[30:] + guids[30:] + ["no-such-guid"]) == 20
    assert b.fetch_messages()["messages"] == []


def test_batched_ack_is_scoped_to_the_recipient(app, pair):
    a, b = pair
    guids = [m["guid"] for m in a.send_envelopes([{"to": b.device_id, "ciphertext": b64(b"x")}] * 3)]
    assert a.call("POST", "/v1/messages/ack", {"guids": guids}) == {"deleted": 0}   # not a's messages
    assert count_rows(app, Message, recipient_id=b.device_id) == 3


@pytest.mark.parametrize("body,status,code", [
    ({"guids": []}, 422, "validation_error"),
    ({"guids": ["x"] * 101}, 422, "validation_error"),
    ({"guids": ["x" * 37]}, 422, "validation_error"),
    ({"guids": [1]}, 422, "validation_error"),
    ({"guids": "abc"}, 422, "validation_error"),
    ({}, 422, "validation_error"),
    ({"guids": ["a"], "extra": 1}, 422, "validation_error"),
])
def test_bad_batched_acks_are_4xx_and_delete_nothing(app, pair, body, status, code):
    a, b = pair
    guid = a.send_envelopes([{"to": b.device_id, "ciphertext": b64(b"x")}])[0]["guid"]
    if body.get("guids") and isinstance(body["guids"], list) and len(body["guids"]) == 101:
        body = {"guids": [guid] * 101}
    assert code_of(b.request("POST", "/v1/messages/ack", body)) == (status, code)
    assert count_rows(app, Message, recipient_id=b.device_id) == 1


def test_send_to_non_contact_is_403_and_stores_nothing(app, pair, transport):
    a, b = pair
    stranger = registered(transport)
    envs = [{"to": b.device_id, "ciphertext": b64(b"ok")}, {"to": stranger.device_id, "ciphertext": b64(b"no")}]
    assert code_of(a.request("POST", "/v1/messages", {"messages": envs})) == (403, "not_permitted")
    assert count_rows(app, Message) == 0


def test_send_to_unknown_device_is_404(pair):
    a, _b = pair
    env = [{"to": "dev_" + "0" * 32, "ciphertext": b64(b"x")}]
    assert code_of(a.request("POST", "/v1/messages", {"messages": env})) == (404, "unknown_recipient")


@pytest.mark.parametrize("envelope,status,code", [
    ({"ciphertext": "!!!"}, 400, "invalid_envelope"),
    ({"ciphertext": b64(b"\0" * (64 * 1024 + 1))}, 422, "validation_error"),     # over its documented size
    ({"ciphertext": ""}, 422, "validation_error"),
    ({"ciphertext": b64(b"x"), "type": 256}, 422, "validation_error"),     # over its documented range
    ({"ciphertext": b64(b"x"), "type": "1"}, 422, "validation_error"),
    ({"ciphertext": b64(b"x"), "extra": 1}, 422, "validation_error"),
])
def test_bad_envelopes_are_4xx(app, pair, envelope, status, code):
    a, b = pair
    assert code_of(a.request("POST", "/v1/messages", {"messages": [{"to": b.device_id, **envelope}]})) == (status, code)
    assert count_rows(app, Message) == 0


def test_largest_envelope_is_accepted(pair):
    a, b = pair
    send(a, b.device_id, b"\1" * (64 * 1024))
    assert len(base64.b64decode(b.fetch_messages()["messages"][0]["ciphertext"])) == 64 * 1024


def test_sending_records_one_collapsed_sync_push(app, pair):
    a, b = pair
    for _ in range(3):
        send(a, b.device_id, b"x")
    assert count_rows(app, Notification, device_id=b.device_id, kind="sync") == 1


def test_sender_token_bucket(settings_factory, app_factory):
    app = app_factory(settings_factory(MESSAGE_RATE_BURST="3", MESSAGE_RATE="0.01"))
    t = flask_transport(app)
    a, b = registered(t), registered(t)
    befriend(a, b)
    env = {"to": b.device_id, "ciphertext": b64(b"x")}
    assert a.request("POST", "/v1/messages", {"messages": [env, env]})[0] == 201
    status, headers, data = a.request("POST", "/v1/messages", {"messages": [env, env]})
    assert status == 429 and data["error"]["code"] == "rate_limited" and int(headers["Retry-After"]) >= 1
    assert a.request("POST", "/v1/messages", {"messages": [env]})[0] == 201


def test_fetch_limit_is_validated(pair):
    _a, b = pair
    assert code_of(b.request("GET", "/v1/messages?limit=101")) == (422, "validation_error")
    assert code_of(b.request("GET", "/v1/messages?limit=0")) == (422, "validation_error")


# -- contacts ---------------------------------------------------------------------------
def test_invite_accept_list_and_delete(transport):
    a, b = registered(transport), registered(transport)
    invite = a.create_invite("Alice", "bcrt1qexample")
    qr = json.loads(invite["qr_payload"])
    assert qr["v"] == 1 and qr["code"] == invite["invite_code"] and qr["name"] == "Alice"
    assert qr["addr"] == "bcrt1qexample" and len(qr["fp"]) == 64
    contact = b.accept_invite(invite["invite_code"], "Bob")
    assert contact["device_id"] == a.device_id and contact["display_name"] == "Alice"
    [mine] = a.contacts()
    assert mine["device_id"] == b.device_id and mine["display_name"] == "Bob"
    assert mine["contact_id"] == contact["contact_id"]
    # either side may delete; afterwards they cannot message each other
    a.delete_contact(contact["contact_id"])
    assert a.contacts() == [] and b.contacts() == []
    env = [{"to": a.device_id, "ciphertext": b64(b"x")}]
    assert code_of(b.request("POST", "/v1/messages", {"messages": env})) == (403, "not_permitted")
    assert code_of(b.request("DELETE", f"/v1/contacts/{contact['contact_id']}")) == (404, "contact_not_found")


ACCEPT = "/v1/contacts/invites/accept"       # the code travels in the body, never in a URL


def test_invite_is_single_use_and_not_for_oneself(transport):
    a, b, c = registered(transport), registered(transport), registered(transport)
    code = a.create_invite("Alice")["invite_code"]
    assert code_of(a.request("POST", ACCEPT, {"code": code})) == (409, "own_invite")
    assert b.request("POST", ACCEPT, {"code": code})[0] == 201
    assert code_of(c.request("POST", ACCEPT, {"code": code})) == (404, "invite_not_found")
    assert code_of(c.request("POST", ACCEPT, {"code": "short"})) == (404, "invite_not_found")


def test_invite_needs_uploaded_keys(transport):
    from tests.messaging_kit import messaging_client
    c = messaging_client(transport=transport)
    c.register()
    assert code_of(c.request("POST", "/v1/contacts/invites", {"display_name": "x"})) == (404, "keys_not_found")


def test_invite_code_is_stored_only_as_a_hash(app, transport):
    from messaging.model import Invite
    a = registered(transport)
    code = a.create_invite("Alice")["invite_code"]
    with app.app_context():
        row = db.session.scalars(select(Invite)).one()
        assert code not in (row.code_hash, row.id) and len(row.code_hash) == 64


def test_expired_invite_is_410(app, transport):
    import datetime as dt
    from sqlalchemy import update
    from messaging.model import Invite
    a, b = registered(transport), registered(transport)
    code = a.create_invite("Alice")["invite_code"]
    with app.app_context():
        db.session.execute(update(Invite).values(expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)))
        db.session.commit()
    assert code_of(b.request("POST", ACCEPT, {"code": code})) == (410, "invite_expired")


def test_invite_acceptance_is_rate_limited(settings_factory, app_factory):
    app = app_factory(settings_factory(RATELIMIT_INVITE_ACCEPT="3/hour"))
    t = flask_transport(app)
    b = registered(t)
    for i in range(3):
        assert code_of(b.request("POST", ACCEPT, {"code": f"{'A' * 42}{i}"}))[0] == 404
    assert code_of(b.request("POST", ACCEPT, {"code": 'A' * 43})) == (429, "rate_limited")


def test_the_path_form_that_put_codes_in_access_logs_is_gone(transport):
    """Issue #14, L6: `POST /v1/contacts/invites/{code}/accept` wrote the code into
    gunicorn's (and any proxy's) access log."""
    a, b = registered(transport), registered(transport)
    code = a.create_invite("Alice")["invite_code"]
    assert code_of(b.request("POST", f"/v1/contacts/invites/{code}/accept", {})) == (404, "not_found")
    assert b.request("POST", ACCEPT, {"code": code})[0] == 201               # still unused: it works here


def test_accepting_a_second_invite_between_contacts_returns_the_existing_contact(transport):
    a, b = registered(transport), registered(transport)
    first = befriend(a, b)
    status, _h, again = b.request("POST", ACCEPT, {"code": a.create_invite('A')['invite_code']})
    assert status == 200 and again["contact_id"] == first["contact_id"]


def test_unsigned_messaging_calls_are_401(app):
    tc = app.test_client()
    assert tc.get("/v1/messages").status_code == 401
    assert tc.get("/v1/keys/count").status_code == 401
    assert tc.post("/v1/contacts/invites", json={"display_name": "x"}).status_code == 401
