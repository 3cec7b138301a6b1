"""Request schemas for /v1/admin (responses are plain JSON documents described in the views)."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from admin.roles import PERMISSIONS, ROLES
from app.schemas import MAX_SAFE_INT, StrictSchema

_ID = validate.Length(min=1, max=64)


class AccountLookupSchema(StrictSchema):
    account_id = fields.String(validate=_ID)
    device_id = fields.String(validate=_ID)

    @validates_schema
    def _one(self, data, **_kw):
        if not data.get("account_id") and not data.get("device_id"):
            raise ValidationError("give account_id or device_id")


class StaffFreezeSchema(StrictSchema):
    frozen = fields.Boolean(load_default=True)
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


class StaffDecisionSchema(StrictSchema):
    decision = fields.String(required=True, validate=validate.OneOf(("approve", "deny")))
    note = fields.String(validate=validate.Length(max=500))


class AuditQuerySchema(StrictSchema):
    subject = fields.String(validate=validate.Length(max=128))
    actor = fields.String(validate=validate.Length(max=128))
    action = fields.String(validate=validate.Length(max=64))
    since = fields.AwareDateTime(default_timezone=None)
    until = fields.AwareDateTime(default_timezone=None)
    before_seq = fields.Integer(validate=validate.Range(min=1, max=MAX_SAFE_INT))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))


class OutboxQuerySchema(StrictSchema):
    kind = fields.String(validate=validate.Length(max=64))
    since = fields.AwareDateTime(default_timezone=None)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))


class PushOutboxQuerySchema(OutboxQuerySchema):
    device_id = fields.String(validate=_ID)


class MailOutboxQuerySchema(OutboxQuerySchema):
    email = fields.String(validate=validate.Length(min=3, max=254), metadata={"description": "the recipient address"})
    case_id = fields.String(validate=_ID, metadata={"description": "mails about this recovery case"})


class StaffCreateSchema(StrictSchema):
    staff_id = fields.String(required=True, validate=validate.Length(min=3, max=32))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=12, max=256))
    roles = fields.List(fields.String(validate=validate.OneOf(ROLES)), required=True,
                        validate=validate.Length(min=1, max=4))
    display_name = fields.String(validate=validate.Length(max=80))


class StaffRolesSchema(StrictSchema):
    roles = fields.List(fields.String(validate=validate.OneOf(ROLES)), required=True,
                        validate=validate.Length(min=1, max=4))


class TokenCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=80))
    scopes = fields.List(fields.String(validate=validate.OneOf(ROLES + tuple(PERMISSIONS))), required=True,
                         validate=validate.Length(min=1, max=20))
    ttl_days = fields.Integer(load_default=90, validate=validate.Range(min=1, max=365))
