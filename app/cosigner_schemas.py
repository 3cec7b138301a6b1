"""Schemas for accounts, addresses, balances, spends and fees."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.price_schemas import CURRENCY, FiatSchema
from app.schemas import StrictSchema
from config.settings import NETWORKS

MAX_SAT = 21_000_000 * 100_000_000


class KeySchema(StrictSchema):
    xpub = fields.String(required=True, validate=validate.Length(min=100, max=120))
    origin = fields.String(required=True, validate=validate.Length(min=10, max=80),
                           metadata={"example": "[d34db33f/48h/1h/0h/2h]"})


class AccountCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=80))
    network = fields.String(required=True, validate=validate.OneOf(NETWORKS))
    template = fields.String(load_default="2of3", validate=validate.OneOf(("2of3", "2of3_decaying", "watch_only")))
    platform_key = fields.Nested(KeySchema)
    recovery_key = fields.Nested(KeySchema)
    decay_blocks = fields.Integer(validate=validate.Range(min=1, max=65_535))
    birthday = fields.Integer(validate=validate.Range(min=1_231_006_505, max=4_102_444_800),
                              metadata={"description": "Unix time of the first payment (rescan from there)"})
    descriptor = fields.String(validate=validate.Length(min=10, max=5_000), metadata={"description": "watch_only"})
    change_descriptor = fields.String(validate=validate.Length(min=10, max=5_000))
    addresses = fields.List(fields.String(validate=validate.Length(min=14, max=100)),
                            validate=validate.Length(min=1, max=1_000))


class ServerKeySchema(Schema):
    xpub = fields.String()
    origin = fields.String()


class AccountSchema(Schema):
    account_id = fields.String(attribute="id")
    name = fields.String()
    network = fields.String()
    template = fields.String()
    decay_blocks = fields.Integer(allow_none=True)
    platform_key = fields.Dict(allow_none=True)
    recovery_key = fields.Dict(allow_none=True)
    server_key = fields.Nested(ServerKeySchema, allow_none=True)
    receive_descriptor = fields.String()
    change_descriptor = fields.String(allow_none=True)
    imported = fields.Boolean()
    policy = fields.Dict()
    restore = fields.Dict(allow_none=True)   # {state, method, from_height, to_height, next_height, blocks_found, error}
    created_at = fields.DateTime()


class AddressSchema(Schema):
    address = fields.String()
    index = fields.Integer()
    created_at = fields.DateTime()


class BalanceSchema(Schema):
    confirmed = fields.Integer()
    trusted_pending = fields.Integer()
    untrusted_pending = fields.Integer()
    immature = fields.Integer()
    reserved_sat = fields.Integer()
    fiat = fields.Nested(FiatSchema, metadata={"description": "with ?currency=: absent when no price is known"})


class TransactionSchema(Schema):
    txid = fields.String()
    direction = fields.String()
    amount_sat = fields.Integer()
    fee_sat = fields.Integer(allow_none=True)
    confirmations = fields.Integer()
    status = fields.String()
    replaced_by = fields.String(allow_none=True)
    block_height = fields.Integer(allow_none=True)
    time = fields.Integer()
    fiat = fields.Nested(FiatSchema, metadata={"description": "with ?currency=: the price of the entry's day"})


class TransactionPageSchema(Schema):
    transactions = fields.List(fields.Nested(TransactionSchema))
    next_cursor = fields.String(allow_none=True)


class HistoryQuerySchema(StrictSchema):
    cursor = fields.String(validate=validate.Regexp(r"^\d{1,7}$"))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    currency = fields.String(validate=CURRENCY, metadata={"description": "add fiat values (one of PRICE_CURRENCIES)"})


class ExportQuerySchema(StrictSchema):
    format = fields.String(load_default="descriptors", validate=validate.OneOf(("descriptors", "bsms", "sparrow")))


class OutputSchema(StrictSchema):
    address = fields.String(required=True, validate=validate.Length(min=14, max=100))
    amount_sat = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_SAT))


class SpendCreateSchema(StrictSchema):
    outputs = fields.List(fields.Nested(OutputSchema), required=True, validate=validate.Length(min=1, max=100))
    fee_rate_sat_vb = fields.Float(validate=validate.Range(min=1, max=10_000))
    conf_target = fields.Integer(validate=validate.Range(min=1, max=1008))
    subtract_fee_from = fields.List(fields.Integer(validate=validate.Range(min=0, max=99)), load_default=list)
    replaceable = fields.Boolean(load_default=True)

    @validates_schema
    def _one_fee_source(self, data, **_kw):
        if "fee_rate_sat_vb" in data and "conf_target" in data:
            raise ValidationError("give fee_rate_sat_vb or conf_target, not both")


class SignedPsbtSchema(StrictSchema):
    psbt = fields.String(required=True, validate=validate.Length(min=20, max=400_000))


class BumpSchema(StrictSchema):
    fee_rate = fields.Float(required=True, validate=validate.Range(min=1, max=10_000))


class SpendSchema(Schema):
    spend_id = fields.String(attribute="id")
    account_id = fields.String()
    state = fields.String()
    psbt = fields.String()
    fee_sat = fields.Integer()
    fee_rate = fields.Float()
    vsize = fields.Integer()
    external_sat = fields.Integer()
    inputs = fields.List(fields.Dict())
    outputs = fields.List(fields.Dict())
    policy_preview = fields.Dict(attribute="decision")
    txid = fields.String(allow_none=True)
    confirmations = fields.Integer()
    replaces = fields.String(attribute="replaces_id", allow_none=True)
    replaced_by = fields.String(attribute="replaced_by_id", allow_none=True)
    error = fields.String(allow_none=True)
    release_at = fields.DateTime(allow_none=True)
    approval_expires_at = fields.DateTime(allow_none=True)
    reserved_until = fields.DateTime(allow_none=True, metadata={"description": "its coins are held until then"})
    created_at = fields.DateTime()


class SpendListQuerySchema(StrictSchema):
    state = fields.List(fields.String(validate=validate.Length(max=20)), load_default=list,
                        metadata={"description": "repeat to match any of several states"})
    cursor = fields.String(validate=validate.Length(max=200))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))


class SpendPageSchema(Schema):
    spends = fields.List(fields.Nested(SpendSchema))
    next_cursor = fields.String(allow_none=True)


class FeesSchema(Schema):
    estimates = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True),
                            metadata={"description": "confirmation target (blocks) → sat/vB"})
    errors = fields.Dict()


class ApprovalInSchema(StrictSchema):
    decision = fields.String(required=True, validate=validate.OneOf(("approve", "deny")))
    note = fields.String(validate=validate.Length(max=500))


class ApprovalSchema(Schema):
    approver_kind = fields.String()
    approver_id = fields.String()
    decision = fields.String()
    note = fields.String(allow_none=True)
    created_at = fields.DateTime()


class ApprovalsSchema(Schema):
    spend = fields.Nested(SpendSchema)
    approvals = fields.List(fields.Nested(ApprovalSchema))


FIAT_AMOUNT = validate.Regexp(r"^\d{1,13}(\.\d{1,2})?$", error="a decimal string with at most two decimals, e.g. \"500.00\"")


class FiatCapSchema(StrictSchema):
    max = fields.String(required=True, validate=FIAT_AMOUNT, metadata={"example": "500.00"})
    currency = fields.String(required=True, validate=CURRENCY, metadata={"example": "USD"})


class LimitSchema(StrictSchema):
    """`max_sat`, or `max` + `currency` (converted at the moment of signing)."""
    window = fields.String(required=True, validate=validate.OneOf(("24h", "7d", "30d")))
    max_sat = fields.Integer(strict=True, validate=validate.Range(min=0, max=MAX_SAT))
    max = fields.String(validate=FIAT_AMOUNT, metadata={"example": "500.00"})
    currency = fields.String(validate=CURRENCY, metadata={"example": "USD"})

    @validates_schema
    def _one_unit(self, data, **_kw):
        fiat = "max" in data or "currency" in data
        if fiat == ("max_sat" in data) or (fiat and not ("max" in data and "currency" in data)):
            raise ValidationError("give max_sat, or max and currency")


class AllowEntrySchema(StrictSchema):
    address = fields.String(required=True, validate=validate.Length(min=14, max=100))
    label = fields.String(load_default="", validate=validate.Length(max=80))


class ApprovalRuleSchema(StrictSchema):
    above_sat = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_SAT))
    required = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=10))
    staff = fields.Boolean(load_default=False)
    devices = fields.List(fields.String(validate=validate.Length(min=4, max=40)), load_default=list,
                          validate=validate.Length(max=10))

    @validates_schema
    def _reachable(self, data, **_kw):
        if data["required"] > len(data.get("devices") or []) + (10 if data.get("staff") else 0):
            raise ValidationError("more approvals required than approvers exist")


class VerifyRuleSchema(StrictSchema):
    """`above_sat`, or `above` in fiat (converted at the moment of signing; no fresh price
    → every spend is verified), and the channel the confirmation must come from."""
    above_sat = fields.Integer(strict=True, validate=validate.Range(min=0, max=MAX_SAT))
    above = fields.Nested(FiatCapSchema)
    channel = fields.String(load_default="either", validate=validate.OneOf(("email", "totp", "either")))

    @validates_schema
    def _one_threshold(self, data, **_kw):
        if ("above_sat" in data) == ("above" in data):
            raise ValidationError("give above_sat or above")


class PolicyRulesSchema(StrictSchema):
    max_per_tx_sat = fields.Integer(allow_none=True, strict=True, validate=validate.Range(min=0, max=MAX_SAT))
    max_per_tx = fields.Nested(FiatCapSchema, allow_none=True,
                               metadata={"description": "a per-transaction cap in fiat, converted at signing"})
    limits = fields.List(fields.Nested(LimitSchema), load_default=list, validate=validate.Length(max=6))
    allowlist = fields.List(fields.Nested(AllowEntrySchema), load_default=list, validate=validate.Length(max=200))
    elsewhere = fields.String(load_default="allow", validate=validate.OneOf(("allow", "delay", "deny")))
    allowlisted_skip_delay = fields.Boolean(load_default=True)
    delay_above_sat = fields.Integer(allow_none=True, strict=True, validate=validate.Range(min=0, max=MAX_SAT))
    delay_all = fields.Boolean(load_default=False)
    delay_seconds = fields.Integer(load_default=86_400, validate=validate.Range(min=60, max=30 * 86_400))
    approvals = fields.Nested(ApprovalRuleSchema, allow_none=True)
    max_fee_rate = fields.Float(allow_none=True, validate=validate.Range(min=1, max=10_000))
    max_fee_sat = fields.Integer(allow_none=True, strict=True, validate=validate.Range(min=0, max=MAX_SAT))
    max_fee_share = fields.Float(allow_none=True, validate=validate.Range(min=0, max=1))
    frozen = fields.Boolean(load_default=False)
    verify = fields.Nested(VerifyRuleSchema, allow_none=True,
                           metadata={"description": "spends above the threshold need an out-of-band confirmation"})

    @validates_schema
    def _windows_once(self, data, **_kw):
        windows = [(x["window"], x.get("currency")) for x in data.get("limits") or []]
        if len(windows) != len(set(windows)):
            raise ValidationError("each window may appear once per unit (satoshis or a currency) in limits")


class PolicyChangeSchema(Schema):
    change_id = fields.String(attribute="id")
    state = fields.String()
    rules = fields.Dict()
    effective_at = fields.DateTime()
    created_by = fields.String()
    created_at = fields.DateTime()


class PolicyOutSchema(Schema):
    version = fields.Integer()
    rules = fields.Dict()
    pending_change = fields.Nested(PolicyChangeSchema, allow_none=True)
    pending_changes = fields.List(fields.String())


class FreezeSchema(StrictSchema):
    frozen = fields.Boolean(load_default=True)
    reason = fields.String(validate=validate.Length(max=500))
