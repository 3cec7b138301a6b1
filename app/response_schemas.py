"""Response schemas for the endpoints whose views build plain JSON documents (admin,
recovery, backups, export). Each view is decorated with `@bp.response(status, Schema)`,
so what it returns is serialised through the schema the OpenAPI document shows: a field
missing here would not reach the client, and the fuzz tests' conformance check compares
every real response with the document.

Times are ISO 8601 strings (the views format them); `details`, `rules` and the like are
free-form objects by design.
"""
from __future__ import annotations

from marshmallow import Schema, fields

Str = fields.String
Int = fields.Integer
Bool = fields.Boolean


def _opt(field_cls, **kw):
    return field_cls(allow_none=True, **kw)


class Ordered(Schema):
    class Meta:
        ordered = True


# -- admin --------------------------------------------------------------------------------------
class StaffMeSchema(Ordered):
    staff_id = Str(required=True)
    roles = fields.List(Str(), required=True)
    kind = Str(required=True, metadata={"description": "token | session | dev_key"})
    scopes = fields.List(Str(), allow_none=True, metadata={"description": "null: every permission of the roles"})


class StaffStatusSchema(Ordered):
    ok = Bool(required=True)
    checked_at = Str(required=True)
    database = fields.Dict(required=True)
    broker = fields.Dict(required=True)
    workers = fields.Dict(required=True)
    jobs = fields.Dict(required=True)
    bitcoind = fields.Dict(required=True)


class AccountBriefSchema(Ordered):
    account_id = Str(required=True)
    name = _opt(Str)
    network = Str(required=True)
    template = Str(required=True)
    owner_device_id = Str(required=True)
    created_at = Str(required=True)
    imported = Bool(required=True)


class AccountListSchema(Ordered):
    accounts = fields.List(fields.Nested(AccountBriefSchema), required=True)


class StaffSpendBriefSchema(Ordered):
    spend_id = Str(required=True)
    account_id = Str(required=True)
    state = Str(required=True)
    external_sat = _opt(Int)
    fee_sat = _opt(Int)
    fee_rate = _opt(fields.Float)
    txid = _opt(Str)
    outputs = fields.List(fields.Dict(), required=True)
    decision = _opt(Str)
    reasons = fields.List(_opt(Str), required=True)
    approval_expires_at = _opt(Str)
    created_at = Str(required=True)


class PendingChangeBriefSchema(Ordered):
    change_id = Str(required=True)
    state = Str(required=True)
    rules = fields.Dict(required=True)
    effective_at = Str(required=True)
    created_by = Str(required=True)
    created_at = Str(required=True)


class CaseBriefSchema(Ordered):
    case_id = Str(required=True)
    state = Str(required=True)
    created_at = Str(required=True)


class StaffSetupChangeSchema(Ordered):
    change_id = Str(required=True)
    effective_at = Str(required=True)
    created_by = Str(required=True)
    created_at = Str(required=True)
    holders = Int(required=True)
    email_changed = Bool(required=True)


class AccountDetailSchema(AccountBriefSchema):
    frozen = Bool(required=True)
    staff_frozen = Bool(required=True)
    policy = fields.Dict(required=True, metadata={"description": "{version, rules}"})
    pending_changes = fields.List(fields.Nested(PendingChangeBriefSchema), required=True)
    spends = fields.List(fields.Nested(StaffSpendBriefSchema), required=True)
    recovery_cases = fields.List(fields.Nested(CaseBriefSchema), required=True)
    recovery_setup_change = fields.Nested(StaffSetupChangeSchema, allow_none=True, metadata={
        "description": "a pending replacement of the recovery setup (a staff freeze voids it); null when none"})


class AuditEventSchema(Ordered):
    seq = Int(required=True)
    at = Str(required=True)
    actor = Str(required=True)
    action = Str(required=True)
    subject = Str(required=True)
    details = fields.Dict(required=True)
    hash = Str(required=True)
    prev_hash = Str(required=True)
    broken = Bool(required=True)
    after_break = Bool(required=True)


class AuditPageSchema(Ordered):
    events = fields.List(fields.Nested(AuditEventSchema), required=True)
    next_before_seq = _opt(Int, metadata={"description": "pass as before_seq for the next page; null: last page"})


class ChainReportSchema(Ordered):
    ok = Bool(required=True)
    checked = Int(required=True)
    first_broken_seq = _opt(Int)
    reason = _opt(Str)


class PushOutboxItemSchema(Ordered):
    id = Str(required=True)
    device_id = Str(required=True)
    kind = Str(required=True)
    state = Str(required=True)
    attempts = Int(required=True)
    channel = _opt(Str)
    last_error = _opt(Str)
    created_at = Str(required=True)
    delivered_at = _opt(Str)


class PushOutboxSchema(Ordered):
    notifications = fields.List(fields.Nested(PushOutboxItemSchema), required=True)


class MailOutboxItemSchema(Ordered):
    id = Str(required=True)
    kind = Str(required=True)
    state = Str(required=True)
    attempts = Int(required=True)
    last_error = _opt(Str)
    to_hash = Str(required=True, metadata={"description": "the first 12 hex digits of the address's keyed hash"})
    created_at = Str(required=True)
    case_id = _opt(Str, metadata={"description": "the recovery case the mail is about, when there is one"})
    to = Str()
    subject = Str()
    body = Str()
    unreadable = Bool()


class MailOutboxSchema(Ordered):
    mails = fields.List(fields.Nested(MailOutboxItemSchema), required=True)


class StaffMemberSchema(Ordered):
    staff_id = Str(required=True)
    display_name = _opt(Str)
    roles = fields.List(Str(), required=True)
    active = Bool(required=True)
    totp_enrolled = Bool(required=True)
    locked_until = _opt(Str)
    last_login_at = _opt(Str)
    created_at = Str(required=True)
    created_by = Str(required=True)


class StaffListSchema(Ordered):
    staff = fields.List(fields.Nested(StaffMemberSchema), required=True)


class TokenSchema(Ordered):
    token_id = Str(required=True)
    staff_id = Str(required=True)
    name = Str(required=True)
    scopes = fields.List(Str(), required=True)
    created_at = Str(required=True)
    expires_at = Str(required=True)
    revoked_at = _opt(Str)
    last_used_at = _opt(Str)


class TokenListSchema(Ordered):
    tokens = fields.List(fields.Nested(TokenSchema), required=True)


# -- recovery (owner, holders, requester) -------------------------------------------------------
class HolderOutSchema(Ordered):
    holder_id = Str(required=True)
    kind = Str(required=True, metadata={"description": "operator | device"})
    device_id = _opt(Str)
    label = _opt(Str)
    role = Str(required=True, metadata={"description": "holder | beneficiary"})
    group_index = Int(required=True)
    member_index = Int(required=True)
    custody_public_key = Str(required=True, metadata={"description": "base64 Ed25519"})
    proven = Bool(required=True)
    proven_at = _opt(Str)
    challenged_at = _opt(Str)


class SetupChangeOutSchema(Ordered):
    change_id = Str(required=True)
    state = Str(required=True, metadata={"description": "pending | applied | cancelled | superseded | void"})
    effective_at = Str(required=True, metadata={"description": "the earliest moment it may take effect"})
    created_at = Str(required=True)
    closed_reason = _opt(Str)
    holders = Int(required=True)
    devices = Int(required=True)
    groups = fields.List(fields.Dict(), required=True)
    group_threshold = Int(required=True)
    email_changed = Bool(required=True)


class SetupOutSchema(Ordered):
    account_id = Str(required=True)
    setup_id = Str(required=True)
    scheme = fields.Dict(required=True)
    status = Str(required=True, metadata={"description": "nominal | critical | at_risk"})
    created_at = Str(required=True)
    holders = fields.List(fields.Nested(HolderOutSchema), required=True)
    pending_change = fields.Nested(SetupChangeOutSchema, allow_none=True, metadata={
        "description": "a requested replacement of this setup, waiting its delay (and the out-of-band "
                       "confirmation when the account has a verification channel); null when none"})


class ChallengeSchema(Ordered):
    holder_id = Str(required=True)
    challenge = Str(required=True, metadata={"description": "base64, 32 bytes"})
    challenged_at = _opt(Str)


class ChallengeListSchema(Ordered):
    challenges = fields.List(fields.Nested(ChallengeSchema), required=True)


class CustodyProvenSchema(Ordered):
    holder_id = Str(required=True)
    proven_at = _opt(Str)


class CustodyCheckSchema(Ordered):
    account_id = Str(required=True)
    challenged = Int(required=True, metadata={"description": "device holders sent a fresh challenge"})
    status = Str(required=True)


class SealedShareOutSchema(Ordered):
    holder_id = Str(required=True)
    sealed_share = Str(required=True, metadata={"description": "base64 NaCl sealed box"})


class CaseOutSchema(Ordered):
    """The requester's view. Until the code is verified it is the same for known and
    unknown emails (no account id, no challenge)."""
    case_id = Str(required=True)
    state = Str(required=True)
    otp_expires_at = _opt(Str)
    expires_at = Str(required=True)
    otp_attempts_left = Int(required=True)
    message = Str(metadata={"description": "only when the case was just started"})
    account_id = Str()
    verified_by = Str(metadata={"description": "otp | staff"})
    delay_ends_at = _opt(Str)
    next_reminder_at = _opt(Str)
    verification_phrase = Str()
    challenge = Str(metadata={"description": "base64; the completion signature covers it"})
    complete_path = Str(metadata={"description": "below the recovery xpub, e.g. 9/0"})
    sealed_shares = fields.List(fields.Nested(SealedShareOutSchema))
    declined = fields.List(Str())
    operator_share_sealed = _opt(Str)
    released_at = _opt(Str)
    early_release = Bool()


class HolderRequestSchema(Ordered):
    case_id = Str(required=True)
    holder_id = Str(required=True)
    state = Str(required=True)
    requester_device_id = Str(required=True)
    sealing_key = Str(required=True, metadata={"description": "base64 X25519: seal your share to it"})
    verification_phrase = Str(required=True)
    delay_ends_at = _opt(Str)
    expires_at = Str(required=True)
    response = _opt(Str, metadata={"description": "null | sealed_share | declined"})


class HolderRequestListSchema(Ordered):
    requests = fields.List(fields.Nested(HolderRequestSchema), required=True)


class HolderResponseSchema(Ordered):
    case_id = Str(required=True)
    holder_id = Str(required=True)
    response = Str(required=True, metadata={"description": "sealed_share | declined"})


class CaseStateSchema(Ordered):
    case_id = Str(required=True)
    state = Str(required=True)


class CompletedSchema(CaseStateSchema):
    account_id = Str(required=True)
    mode = Str(required=True, metadata={"description": "sweep"})


class BackupOutSchema(Ordered):
    account_id = Str(required=True)
    version = Int(required=True)
    sha256 = Str(required=True)
    size = Int(required=True)
    created_at = Str(required=True)
    blob = Str(metadata={"description": "base64; only when reading a backup"})


class ExportSchema(Ordered):
    format = Str(required=True)
    export = fields.Raw(required=True, metadata={"description": "an object (descriptors, sparrow) or text (bsms)"})


# -- recovery (staff) -------------------------------------------------------------------------------
class StaffCaseResponseSchema(Ordered):
    holder_id = Str(required=True)
    device_id = Str(required=True)
    response = Str(required=True)
    at = Str(required=True)


class StaffCaseSchema(Ordered):
    case_id = Str(required=True)
    account_id = _opt(Str)
    state = Str(required=True)
    requester_device_id = Str(required=True)
    verified_by = _opt(Str)
    otp_attempts = Int(required=True)
    delay_ends_at = _opt(Str)
    expires_at = Str(required=True)
    released_at = _opt(Str)
    early_release = Bool(required=True)
    staff_approvals = fields.List(fields.Dict(), required=True)
    closed_reason = _opt(Str)
    history = fields.List(fields.Dict(), required=True)
    created_at = Str(required=True)
    responses = fields.List(fields.Nested(StaffCaseResponseSchema), required=True)
    sealing_key = Str(required=True)
    audit = fields.List(fields.Dict(), metadata={"description": "the case's audit trail (single-case view only)"})


class StaffCaseListSchema(Ordered):
    cases = fields.List(fields.Nested(StaffCaseSchema), required=True)
