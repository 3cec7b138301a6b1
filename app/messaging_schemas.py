"""Marshmallow schemas for the messaging API (keys, messages, contacts). Shapes and
sizes only; key encodings, signatures and ciphertext sizes are checked by the messaging
package, which answers 400 with a specific code."""
from __future__ import annotations

from marshmallow import Schema, fields, pre_dump, validate

from app.schemas import StrictSchema
from messaging.limits import (MAX_ACK, MAX_DISPLAY_NAME, MAX_ENVELOPES_PER_REQUEST, MAX_FETCH, MAX_GUID,
                              MAX_MESSAGE_BYTES, MAX_MESSAGE_TYPE, MAX_PREKEYS_PER_UPLOAD, MAX_RECEIVE_ADDRESS)
from messaging.prekeys import MAX_KEY_ID

B64_KEY = validate.Length(min=1, max=64)
MAX_CIPHERTEXT_CHARS = (MAX_MESSAGE_BYTES + 2) // 3 * 4


class PreKeySchema(StrictSchema):
    key_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_KEY_ID))
    public_key = fields.String(required=True, validate=B64_KEY,
                               metadata={"description": "base64 of a 33-byte serialized Curve25519 key"})


class SignedPreKeySchema(PreKeySchema):
    signature = fields.String(required=True, validate=validate.Length(min=1, max=128),
                              metadata={"description": "base64 XEdDSA signature by the identity key"})


class KeyUploadSchema(StrictSchema):
    identity_key = fields.String(required=True, validate=B64_KEY)
    registration_id = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0, max=2 ** 31 - 1))
    signed_prekey = fields.Nested(SignedPreKeySchema, load_default=None, allow_none=True)
    one_time_prekeys = fields.List(fields.Nested(PreKeySchema), load_default=None, allow_none=True,
                                   validate=validate.Length(max=MAX_PREKEYS_PER_UPLOAD),
                                   metadata={"description": "replaces the stored pool"})
    last_resort_key = fields.Nested(PreKeySchema, load_default=None, allow_none=True)


class KeyCountSchema(Schema):
    count = fields.Integer(required=True)


class BundleSchema(Schema):
    device_id = fields.String(required=True)
    registration_id = fields.Integer(required=True)
    identity_key = fields.String(required=True)
    signed_prekey = fields.Nested(SignedPreKeySchema, required=True)
    one_time_prekey = fields.Nested(PreKeySchema, required=True)
    last_resort = fields.Boolean(required=True)


class EnvelopeInSchema(StrictSchema):
    to = fields.String(required=True, validate=validate.Length(min=1, max=40))
    ciphertext = fields.String(required=True, validate=validate.Length(min=1, max=MAX_CIPHERTEXT_CHARS),
                               metadata={"description": f"base64, at most {MAX_MESSAGE_BYTES} bytes decoded"})
    type = fields.Integer(strict=True, load_default=1, validate=validate.Range(min=0, max=MAX_MESSAGE_TYPE))


class SendSchema(StrictSchema):
    messages = fields.List(fields.Nested(EnvelopeInSchema), required=True,
                           validate=validate.Length(min=1, max=MAX_ENVELOPES_PER_REQUEST))


class SentSchema(Schema):
    guid = fields.String(required=True)
    to = fields.String(attribute="recipient_id", required=True)
    server_timestamp = fields.DateTime(required=True)


class SentListSchema(Schema):
    messages = fields.List(fields.Nested(SentSchema), required=True)


class FetchArgsSchema(StrictSchema):
    limit = fields.Integer(load_default=MAX_FETCH, validate=validate.Range(min=1, max=MAX_FETCH))


class AckSchema(StrictSchema):
    guids = fields.List(fields.String(validate=validate.Length(min=1, max=MAX_GUID)), required=True,
                        validate=validate.Length(min=1, max=MAX_ACK),
                        metadata={"description": f"1 to {MAX_ACK} guids from GET /v1/messages"})


class AckResultSchema(Schema):
    deleted = fields.Integer(required=True, metadata={"description": "messages deleted by this call "
                                                                     "(0 for guids already acknowledged)"})


class SystemBodySchema(Schema):
    """A system message's body (messaging.system.KINDS, version `v`). Fields per `type`:
    recovery_started: case_id, role, holder_id (holders), sealing_key, verification_phrase,
    delay_ends_at; recovery_withdrawn: case_id, holder_id; custody_challenge: holder_id,
    challenge; inheritance_named: account_id; inheritance_claim_started: claim_id,
    account_id, role, beneficiary_device_id, wait_ends_at; inheritance_claim_reminder:
    claim_id, account_id, role, wait_ends_at; inheritance_claim_released: claim_id,
    account_id, role; inheritance_released / inheritance_declined: claim_id, account_id.
    Unknown types may appear in later versions: ignore them."""
    v = fields.Integer(required=True, metadata={"description": "body version (1)"})
    type = fields.String(required=True, metadata={"description": "recovery_started | recovery_withdrawn | "
                                                                "custody_challenge | inheritance_named | "
                                                                "inheritance_claim_started | inheritance_claim_reminder "
                                                                "| inheritance_claim_released | inheritance_released | "
                                                                "inheritance_declined"})
    case_id = fields.String()
    role = fields.String(metadata={"description": "owner | holder"})
    holder_id = fields.String()
    sealing_key = fields.String(metadata={"description": "base64 X25519"})
    verification_phrase = fields.String()
    delay_ends_at = fields.String(metadata={"description": "ISO 8601"})
    challenge = fields.String(metadata={"description": "base64, 32 bytes"})
    account_id = fields.String()
    claim_id = fields.String()
    beneficiary_device_id = fields.String()
    wait_ends_at = fields.String(metadata={"description": "ISO 8601"})


class QueuedSchema(Schema):
    """One queued message: an end-to-end encrypted envelope (`system: false`, base64
    `ciphertext`), or a server-authored system message (`system: true`, from `custos`,
    type 200, its `body` an object — no ciphertext)."""
    guid = fields.String(required=True)
    sender = fields.String(attribute="sender_id", data_key="from", required=True)
    type = fields.Integer(required=True)
    system = fields.Boolean(required=True)
    ciphertext = fields.String(metadata={"description": "base64; envelopes only"})
    body = fields.Nested(SystemBodySchema, metadata={"description": "system messages only"})
    server_timestamp = fields.DateTime(required=True)

    @pre_dump
    def _shape(self, message, **_kw) -> dict:
        from messaging.encoding import b64encode
        from messaging.system import decode, is_system
        out = {"guid": message.guid, "sender_id": message.sender_id, "type": message.type,
               "server_timestamp": message.server_timestamp}
        if is_system(message.sender_id, message.type):
            out.update(system=True, body=decode(message.ciphertext))
        else:
            out.update(system=False, ciphertext=b64encode(message.ciphertext))
        return out


class QueueSchema(Schema):
    messages = fields.List(fields.Nested(QueuedSchema), required=True)
    more = fields.Boolean(required=True)


class InviteInSchema(StrictSchema):
    display_name = fields.String(required=True, validate=validate.Length(min=1, max=MAX_DISPLAY_NAME))
    receive_address = fields.String(load_default=None, allow_none=True,
                                    validate=validate.Length(min=1, max=MAX_RECEIVE_ADDRESS))


class InviteOutSchema(Schema):
    invite_id = fields.String(required=True)
    invite_code = fields.String(required=True, metadata={"description": "single use; shown once"})
    expires_at = fields.DateTime(required=True)
    qr_payload = fields.String(required=True, metadata={"description": "JSON for the QR code"})


class AcceptInSchema(StrictSchema):
    display_name = fields.String(load_default=None, allow_none=True,
                                 validate=validate.Length(min=1, max=MAX_DISPLAY_NAME))


class AcceptBodySchema(AcceptInSchema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=100),
                         metadata={"description": "the invite code from the QR payload"})


class ContactSchema(Schema):
    contact_id = fields.String(required=True)
    device_id = fields.String(required=True)
    display_name = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)


class ContactListSchema(Schema):
    contacts = fields.List(fields.Nested(ContactSchema), required=True)
