"""Request and response schemas of the out-of-band verification API (issue #17), in the
style of app/response_schemas.py: the views return objects serialised through these."""
from __future__ import annotations

from marshmallow import fields, validate

from app.response_schemas import Ordered
from app.schemas import StrictSchema

CODE = validate.Regexp(r"^\d{6}$", error="a 6-digit code")


class EmailInSchema(StrictSchema):
    email = fields.String(required=True, validate=validate.Length(min=3, max=254))


class CodeInSchema(StrictSchema):
    code = fields.String(required=True, validate=CODE, metadata={"example": "123456"})


class ChannelSchema(Ordered):
    channel_id = fields.String(attribute="id", required=True)
    kind = fields.String(required=True, metadata={"description": "email | totp"})
    state = fields.String(required=True, metadata={"description": "pending | waiting | active | removing | retired"})
    effective_at = fields.DateTime(allow_none=True, metadata={"description": "when a waiting change applies"})
    created_at = fields.DateTime(required=True)
    confirmed_at = fields.DateTime(allow_none=True)


class EmailCodeResultSchema(Ordered):
    channel = fields.Nested(ChannelSchema, required=True)


class TotpEnrollmentSchema(Ordered):
    channel = fields.Nested(ChannelSchema, required=True)
    otpauth_uri = fields.String(required=True, metadata={"description": "shown once; put it in an authenticator"})
    qr_svg = fields.String(required=True, metadata={"description": "the same URI as an inline SVG QR code"})


class RequestSchema(Ordered):
    request_id = fields.String(attribute="id", required=True)
    action = fields.String(required=True)
    subject_kind = fields.String(required=True)
    subject_id = fields.String(required=True)
    channel = fields.String(required=True, metadata={"description": "email | totp | either"})
    state = fields.String(required=True)
    confirmed_via = fields.String(allow_none=True)
    summary = fields.Dict(required=True)
    expires_at = fields.DateTime(required=True)
    created_at = fields.DateTime(required=True)


class VerificationStatusSchema(Ordered):
    channels = fields.List(fields.Nested(ChannelSchema), required=True)
    pending = fields.List(fields.Nested(RequestSchema), required=True)


class RequestOutcomeSchema(Ordered):
    request = fields.Nested(RequestSchema, required=True)
    outcome = fields.String(required=True, metadata={"description": "what happened to the subject (e.g. broadcast, "
                                                                    "delayed, denied, applied, confirmed)"})


