"""Request and response schemas of the inheritance API (issue #18), in the style of
app/recovery_schemas.py and app/response_schemas.py. The plan's own fields are checked
by the inheritance package (400 with a specific code, nothing stored), so they are
`Raw` here: a wrong type is the same clear 400 as a value out of range."""
from __future__ import annotations

from marshmallow import fields, validate

from app.response_schemas import Bool, Int, Ordered, Str, _opt
from app.schemas import StrictSchema
from inheritance.limits import MAX_BENEFICIARIES, WAITING_DAYS_DEFAULT, WAITING_DAYS_MAX, WAITING_DAYS_MIN


# -- requests ---------------------------------------------------------------------------------
class PlanSchema(StrictSchema):
    beneficiaries = fields.Raw(required=True, allow_none=True, metadata={
        "description": f"list of at most {MAX_BENEFICIARIES} {{device_id, label}}: messaging contacts of the owner "
                       "who hold a share of the recovery setup with role beneficiary"})
    waiting_days = fields.Raw(load_default=WAITING_DAYS_DEFAULT, allow_none=True, metadata={
        "description": f"integer, {WAITING_DAYS_MIN}..{WAITING_DAYS_MAX} (default {WAITING_DAYS_DEFAULT})"})


class ClaimStartSchema(StrictSchema):
    account_id = fields.String(required=True, validate=validate.Length(min=1, max=40))
    sealing_key = fields.String(required=True, validate=validate.Length(min=1, max=64),
                                metadata={"description": "base64 X25519 public key: the operator's share is "
                                                         "released sealed to it"})


class ClaimCancelQuerySchema(StrictSchema):
    freeze = fields.Boolean(load_default=False, metadata={"description": "also freeze the account (owner freeze)"})


class ClaimSweepSchema(StrictSchema):
    destination_account_id = fields.String(required=True, validate=validate.Length(min=1, max=40),
                                           metadata={"description": "an account owned by the beneficiary's device"})
    fee_rate = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=1, max=10_000),
                            metadata={"description": "sat/vB"})


class AdminClaimQuerySchema(StrictSchema):
    state = fields.String(load_default=None, validate=validate.OneOf(
        ["requested", "waiting", "released", "completed", "cancelled", "expired"]))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))


# -- responses --------------------------------------------------------------------------------
class BeneficiaryOutSchema(Ordered):
    device_id = Str(required=True)
    label = _opt(Str)
    holder_id = _opt(Str)
    named_at = _opt(Str)


class PlanChangeOutSchema(Ordered):
    change_id = Str(required=True)
    action = Str(required=True, metadata={"description": "inheritance.add_beneficiary | inheritance.shorten_wait"})
    state = Str(required=True, metadata={"description": "pending | applied | cancelled | superseded | void"})
    device_id = _opt(Str)
    label = _opt(Str)
    waiting_days = _opt(Int)
    effective_at = Str(required=True)
    created_at = Str(required=True)
    closed_reason = _opt(Str)


class OwnerClaimSchema(Ordered):
    claim_id = Str(required=True)
    beneficiary_device_id = Str(required=True)
    state = Str(required=True)
    wait_ends_at = Str(required=True)
    released_at = _opt(Str)
    created_at = Str(required=True)


class PlanOutSchema(Ordered):
    account_id = Str(required=True)
    waiting_days = _opt(Int, metadata={"description": "null: no plan yet"})
    beneficiaries = fields.List(fields.Nested(BeneficiaryOutSchema), required=True)
    pending_changes = fields.List(fields.Nested(PlanChangeOutSchema), required=True)
    claims = fields.List(fields.Nested(OwnerClaimSchema), required=True, metadata={"description": "open claims"})


class ClaimOutSchema(Ordered):
    claim_id = Str(required=True)
    account_id = Str(required=True)
    state = Str(required=True, metadata={"description": "requested | waiting | released | completed | cancelled "
                                                        "| expired"})
    waiting_days = Int(required=True)
    wait_ends_at = Str(required=True)
    created_at = Str(required=True)
    released_at = _opt(Str)
    expires_at = _opt(Str)
    closed_reason = _opt(Str)
    challenge = Str(required=True, metadata={"description": "base64, 32 bytes: sign it to prove the recovery key"})
    operator_share_sealed = _opt(Str, metadata={"description": "base64 sealed box to the claim's sealing key, once "
                                                               "released"})
    proven = Bool(required=True)
    destination_account_id = _opt(Str)
    sweep_spend_id = _opt(Str)
    sweep_txid = _opt(Str)


class StaffClaimSchema(Ordered):
    claim_id = Str(required=True)
    account_id = Str(required=True)
    state = Str(required=True)
    beneficiary_device_id = Str(required=True)
    owner_device_id = Str(required=True)
    waiting_days = Int(required=True)
    wait_ends_at = Str(required=True)
    next_reminder_at = _opt(Str)
    reminders_sent = Int(required=True)
    released_at = _opt(Str)
    expires_at = _opt(Str)
    proven = Bool(required=True)
    sweep_txid = _opt(Str)
    closed_reason = _opt(Str)
    history = fields.List(fields.Dict(), required=True)
    created_at = Str(required=True)
    audit = fields.List(fields.Dict(), metadata={"description": "the claim's audit trail (single claim only)"})


class StaffClaimListSchema(Ordered):
    claims = fields.List(fields.Nested(StaffClaimSchema), required=True)
