"""Marshmallow schemas for the recovery, backup and recovery-admin APIs. Shapes and
sizes only; SLIP-39 schemes, shares, keys and signatures are checked by the recovery
package, which answers 400/422 with a specific code."""
from __future__ import annotations

from marshmallow import fields, validate

from app.schemas import MAX_SAFE_INT, StrictSchema
from recovery.limits import MAX_BACKUP_BYTES, MAX_EMAIL, MAX_GROUPS, MAX_HOLDERS, MAX_SEALED_SHARE_BYTES

B64_32 = validate.Length(min=1, max=64)


def _b64_chars(n: int) -> int:
    return (n + 2) // 3 * 4


class HolderSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(["operator", "device"]))
    device_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    label = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    role = fields.String(load_default="holder", validate=validate.OneOf(["holder", "beneficiary"]),
                         metadata={"description": "beneficiary: this device may be named in the inheritance plan"})
    group_index = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_GROUPS - 1))
    member_index = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_HOLDERS - 1))
    custody_public_key = fields.String(required=True, validate=B64_32,
                                       metadata={"description": "base64 Ed25519 public key derived from the "
                                                                "share with HKDF (see recovery/shares.py)"})


class SetupSchema(StrictSchema):
    scheme = fields.Dict(required=True, metadata={"description": "{group_threshold, groups: [{threshold, count}], "
                                                                 "identifier, extendable, iteration_exponent}"})
    operator_share = fields.String(required=True, validate=validate.Length(min=1, max=1000),
                                   metadata={"description": "the operator's SLIP-39 mnemonic (stored encrypted)"})
    operator_shares = fields.List(fields.String(), load_default=None, metadata={"description": "refused: one only"})
    email = fields.String(required=True, validate=validate.Length(min=3, max=MAX_EMAIL))
    holders = fields.List(fields.Nested(HolderSchema), required=True, validate=validate.Length(min=1, max=MAX_HOLDERS))


class StartSchema(StrictSchema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=MAX_EMAIL))
    sealing_key = fields.String(required=True, validate=B64_32,
                                metadata={"description": "base64 X25519 public key (32 bytes)"})


class OtpSchema(StrictSchema):
    otp = fields.String(required=True, validate=validate.Length(min=1, max=16))


class SealedShareSchema(StrictSchema):
    sealed_share = fields.String(required=True, validate=validate.Length(min=1, max=_b64_chars(MAX_SEALED_SHARE_BYTES)),
                                 metadata={"description": "base64 NaCl sealed box to the requester's sealing key"})


class SignatureSchema(StrictSchema):
    signature = fields.String(required=True, validate=validate.Length(min=1, max=200),
                              metadata={"description": "hex or base64 DER ECDSA signature by the recovery key at "
                                                       "/9/0 over SHA-256(\"custos-recovery-complete-v1\\0\" ‖ "
                                                       "case id ‖ \"\\0\" ‖ challenge)"})


class CancelQuerySchema(StrictSchema):
    freeze = fields.Boolean(load_default=False)


class CustodyAnswerSchema(StrictSchema):
    signature = fields.String(required=True, validate=validate.Length(min=1, max=100),
                              metadata={"description": "base64 Ed25519 signature by the custody key"})


class SweepSchema(StrictSchema):
    destination_account_id = fields.String(required=True, validate=validate.Length(min=1, max=40))
    fee_rate = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=1, max=10_000),
                            metadata={"description": "sat/vB"})


class BackupSchema(StrictSchema):
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_SAFE_INT))
    sha256 = fields.String(required=True, validate=validate.Length(equal=64))
    blob = fields.String(required=True, validate=validate.Length(min=1, max=_b64_chars(MAX_BACKUP_BYTES)),
                         metadata={"description": "base64 of the client-encrypted blob (≤ 1 MiB decoded)"})


class AdminListQuerySchema(StrictSchema):
    state = fields.String(load_default=None)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
