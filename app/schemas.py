"""Marshmallow schemas for the API (request validation and OpenAPI documentation)."""
from __future__ import annotations

import datetime as dt

from marshmallow import Schema, fields, validate

from devices.keys import KEY_TYPES
from devices.model import MAX_PUSH_TOKEN, PLATFORMS


# The largest integer a JSON client can hold exactly (IEEE double); also fits BIGINT.
MAX_SAFE_INT = 2 ** 53 - 1


class StrictSchema(Schema):
    """Unknown fields are an error, not silently ignored."""
    class Meta:
        ordered = True


class HealthSchema(Schema):
    status = fields.String(required=True)


class CheckSchema(Schema):
    ok = fields.Boolean(required=True)
    ms = fields.Float(required=True)
    detail = fields.String(required=True)


class ReadySchema(Schema):
    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.Nested(CheckSchema))


class DeviceRegistrationSchema(StrictSchema):
    key_type = fields.String(required=True, validate=validate.OneOf(KEY_TYPES),
                             metadata={"description": "ed25519, or ecdsa-p256 for secure enclaves"})
    public_key = fields.String(required=True, validate=validate.Length(min=40, max=200),
                               metadata={"description": "base64: 32 raw bytes (ed25519) or a SEC1 point (P-256)"})
    platform = fields.String(validate=validate.OneOf(PLATFORMS), load_default=None)
    push_token = fields.String(validate=validate.Length(min=1, max=MAX_PUSH_TOKEN), load_default=None)


class PushTokenSchema(StrictSchema):
    push_token = fields.String(required=True, allow_none=True,
                               validate=validate.Length(min=1, max=MAX_PUSH_TOKEN),
                               metadata={"description": "null clears it"})


class DeviceSchema(Schema):
    device_id = fields.String(attribute="id", required=True)
    key_type = fields.String(required=True)
    key_fingerprint = fields.String(required=True)
    platform = fields.String(allow_none=True)
    has_push_token = fields.Method("_has_push")
    created_at = fields.DateTime(required=True)
    revoked_at = fields.DateTime(allow_none=True)

    def _has_push(self, device) -> bool:
        return bool(device.push_token)

    def dump(self, obj, *, many=None):
        """Marshmallow's dump of one device (an ORM Device, or the read-only row request
        authentication puts on g.device — what GET /v1/devices/me returns), written out:
        the dict marshmallow builds (tests/unit/test_schema_fast_dump.py compares them)
        without its per-field machinery, which on a Row also raised and caught a
        TypeError per field. Anything else — many, only/exclude, a subclass, a missing
        attribute, a value of another type — goes to marshmallow."""
        if type(self) is not DeviceSchema or (self.many if many is None else many) or self.only or self.exclude:
            return super().dump(obj, many=many)
        try:
            out = {"device_id": obj.id, "key_type": obj.key_type, "key_fingerprint": obj.key_fingerprint,
                   "platform": obj.platform, "has_push_token": bool(obj.push_token)}
            created, revoked = obj.created_at, obj.revoked_at
        except AttributeError:
            return super().dump(obj, many=many)
        if type(out["device_id"]) is not str or type(out["key_type"]) is not str \
                or type(out["key_fingerprint"]) is not str or type(out["platform"]) not in (str, type(None)) \
                or type(created) is not dt.datetime or type(revoked) not in (dt.datetime, type(None)):
            return super().dump(obj, many=many)
        out["created_at"] = created.isoformat()
        out["revoked_at"] = None if revoked is None else revoked.isoformat()
        return out


class ErrorBodySchema(Schema):
    class Meta:
        ordered = True
    code = fields.String(required=True, metadata={"description": "machine-readable, e.g. `validation_error`, "
                                                                "`signature_invalid`, `policy_denied`"})
    message = fields.String(required=True, metadata={"description": "for people; never quotes a secret"})
    details = fields.Dict(required=True, metadata={"description": "code-specific; `{}` when there is nothing to add"})


class ErrorSchema(Schema):
    """The one error envelope: `{"error": {"code", "message", "details"}}`."""
    error = fields.Nested(ErrorBodySchema, required=True)
