"""/v1/accounts/{id}/inheritance (the owner's plan), /v1/inheritance/claims (the
beneficiary's claim: start, status, prove the recovery key, build and submit the sweep;
the owner's cancel) and /v1/admin/inheritance/claims (staff: list, inspect, cancel)."""
from __future__ import annotations

from flask import current_app, g
from flask_smorest import Blueprint

from app.auth.device import signed
from app.auth.staff import staff_required
from app.cosigner_schemas import SignedPsbtSchema, SpendSchema
from app.deps import deps
from app.extensions import db
from app.inheritance_schemas import (AdminClaimQuerySchema, ClaimCancelQuerySchema, ClaimOutSchema, ClaimStartSchema,
                                     ClaimSweepSchema, OwnerClaimSchema, PlanChangeOutSchema, PlanOutSchema, PlanSchema,
                                     StaffClaimListSchema, StaffClaimSchema)
from app.openapi_errors import errors
from app.recovery_api import iso, unb64
from app.recovery_schemas import SignatureSchema
from app.spends_api import refused_or
from app.transaction import committing
from cosigner import accounts
from inheritance import claims, completion, plans, staff, sweep
from inheritance.errors import InvalidPlan
from store.base import utcnow

bp = Blueprint("inheritance", __name__, url_prefix="/v1", description="Inheritance")
admin_bp = Blueprint("inheritance_admin", __name__, url_prefix="/v1/admin", description="Inheritance claims (staff)")

PLAN_CODES = ("invalid_beneficiary, duplicate_beneficiary, invalid_waiting_days, recovery_not_configured, "
              "beneficiary_is_owner, beneficiary_unknown, beneficiary_not_contact, beneficiary_not_holder, "
              "beneficiary_below_threshold")


def ictx():
    """The app's InheritanceContext (built on first use, sharing the recovery context)."""
    ext = current_app.extensions
    if "custos_inheritance" not in ext:
        from app.recovery_api import rctx
        from inheritance.context import inheritance_context
        ext["custos_inheritance"] = inheritance_context(deps().settings, rctx(), deps().cosigner)
    return ext["custos_inheritance"]


def change_out(c) -> dict:
    return iso({"change_id": c.id, "action": c.action, "state": c.state, "device_id": c.payload.get("device_id"),
                "label": c.payload.get("label"), "waiting_days": c.payload.get("waiting_days"),
                "effective_at": c.effective_at, "created_at": c.created_at, "closed_reason": c.closed_reason})


def plan_out(account_id: str) -> dict:
    plan = plans.get(db.session, account_id)
    return iso({"account_id": account_id, "waiting_days": plan.waiting_days if plan else None,
                "beneficiaries": [{"device_id": b["device_id"], "label": b.get("label"),
                                   "holder_id": b.get("holder_id"), "named_at": b.get("named_at")}
                                  for b in (plan.beneficiaries if plan else [])],
                "pending_changes": [change_out(c) for c in plans.pending(db.session, account_id)],
                "claims": [owner_claim_out(c) for c in claims.open_claims(db.session, account_id)]})


def owner_claim_out(c) -> dict:
    return iso({"claim_id": c.id, "beneficiary_device_id": c.beneficiary_device_id, "state": c.state,
                "wait_ends_at": c.wait_ends_at, "released_at": c.released_at, "created_at": c.created_at})


def claim_out(c) -> dict:
    return iso({"claim_id": c.id, "account_id": c.account_id, "state": c.state, "waiting_days": c.waiting_days,
                "wait_ends_at": c.wait_ends_at, "created_at": c.created_at, "released_at": c.released_at,
                "expires_at": c.expires_at, "closed_reason": c.closed_reason, "challenge": claims.b64(c.challenge),
                "operator_share_sealed": claims.b64(c.released_share) if c.state == "released" else None,
                "proven": c.proven_at is not None, "destination_account_id": c.destination_account_id,
                "sweep_spend_id": c.sweep_spend_id, "sweep_txid": c.sweep_txid})


# -- the owner's plan ---------------------------------------------------------------------------------
@bp.route("/accounts/<account_id>/inheritance", methods=["PUT"])
@errors({400: f"The plan is refused, nothing stored. `error.code`: {PLAN_CODES} (`details.device_id`).",
         404: "Not your account (`account_not_found`)."})
@signed
@bp.arguments(PlanSchema)
@bp.response(200, PlanOutSchema)
def put_plan(body, account_id):
    """Set the inheritance plan. Removing a beneficiary or lengthening the wait applies
    at once; adding a beneficiary or shortening the wait is a loosening: it becomes a
    pending change (`pending_changes`) that applies after POLICY_LOOSEN_DELAY unless the
    owner cancels it. A beneficiary is told it was named (system message) when that
    applies, and nothing else."""
    now = utcnow()
    with committing():
        account = accounts.get_owned(db.session, account_id, g.device.id)
        plans.put(db.session, ictx(), account, body, actor=g.device.id, now=now)
        return plan_out(account.id)


@bp.route("/accounts/<account_id>/inheritance", methods=["GET"])
@errors({404: "Not your account (`account_not_found`)."})
@signed
@bp.response(200, PlanOutSchema)
def get_plan(account_id):
    """The plan in force, its pending changes and the open claims."""
    account = accounts.get_owned(db.session, account_id, g.device.id)
    return plan_out(account.id)


@bp.route("/accounts/<account_id>/inheritance/changes/<change_id>", methods=["DELETE"])
@errors({404: "`error.code`: account_not_found, inheritance_change_not_found."})
@signed
@bp.response(200, PlanChangeOutSchema)
def cancel_change(account_id, change_id):
    """Cancel a pending plan change (a beneficiary added, the wait shortened). Idempotent."""
    with committing():
        account = accounts.get_owned(db.session, account_id, g.device.id)
        return change_out(plans.cancel_change(db.session, account, change_id, actor=g.device.id, now=utcnow()))


# -- claims -------------------------------------------------------------------------------------------
@bp.route("/inheritance/claims", methods=["POST"])
@errors({400: "`error.code`: invalid_sealing_key.",
         403: "Not a beneficiary in force of that account (`not_a_beneficiary`; the same for an unknown account).",
         409: "`error.code`: claim_open (`details.claim_id`), claim_blocked (a claim was declined less than 30 "
              "days ago; `details.blocked_until`)."})
@signed
@bp.arguments(ClaimStartSchema)
@bp.response(201, ClaimOutSchema)
def start_claim(body):
    """A beneficiary claims the account. The owner's device, the recovery e-mail and the
    other holders are told at once and reminded (INHERITANCE_REMINDER_INTERVAL, 7 days
    and 1 day before the end); the operator's share is released sealed to `sealing_key`
    when the waiting period ends without the owner cancelling."""
    key = body["sealing_key"]
    try:
        raw = unb64(key, "sealing_key", "invalid_sealing_key", 32)
    except Exception:
        raise InvalidPlan("sealing_key must be a base64 X25519 public key (32 bytes)",
                          code="invalid_sealing_key") from None
    with committing():
        return claim_out(claims.start(db.session, ictx(), device_id=g.device.id, account_id=body["account_id"],
                                      sealing_key=raw, now=utcnow()))


@bp.route("/inheritance/claims/<claim_id>", methods=["GET"])
@errors({404: "Not your claim (`claim_not_found`)."})
@signed
@bp.response(200, ClaimOutSchema)
def get_claim(claim_id):
    """The beneficiary's view of its claim (the sealed operator share once released)."""
    return claim_out(claims.get_for_beneficiary(db.session, claim_id, g.device.id))


@bp.route("/inheritance/claims/<claim_id>", methods=["DELETE"])
@errors({404: "Not the claimed account's owner (`claim_not_found`).",
         410: "`error.code`: claim_closed (completed or expired; `details.state`)."})
@signed
@bp.arguments(ClaimCancelQuerySchema, location="query")
@bp.response(200, OwnerClaimSchema)
def cancel_claim(query, claim_id):
    """The owner declines the claim (also after the release, until the sweep is
    broadcast); `?freeze=true` also freezes the account. The beneficiary is told it was
    declined and cannot claim again for 30 days. Idempotent."""
    with committing():
        claim = claims.cancel(db.session, ictx(), claim_id, g.device.id, freeze=query["freeze"], now=utcnow())
        return owner_claim_out(claim)


@bp.route("/inheritance/claims/<claim_id>/complete", methods=["POST"])
@errors({404: "Not your claim (`claim_not_found`).",
         409: "`error.code`: claim_not_released, no_recovery_key.",
         410: "`error.code`: claim_closed (`details.state`).",
         422: "`error.code`: proof_invalid (not the recovery key's signature over this claim's challenge)."})
@signed
@bp.arguments(SignatureSchema)
@bp.response(200, ClaimOutSchema)
def complete_claim(body, claim_id):
    """Prove the rebuilt recovery key (the recovery completion signature over the claim
    id and challenge). The claim then allows one sweep; it stays `released` (and the
    owner can still cancel) until that sweep is broadcast."""
    text = body["signature"].strip()
    try:
        sig = bytes.fromhex(text)
    except ValueError:
        sig = unb64(text, "signature", "invalid_signature")
    with committing():
        return claim_out(completion.prove(db.session, ictx(), claim_id, g.device.id, sig, utcnow()))


@bp.route("/inheritance/claims/<claim_id>/sweep", methods=["POST"])
@errors({404: "Not your claim (`claim_not_found`).",
         410: "`error.code`: claim_closed (`details.state`).",
         422: "`error.code`: claim_not_proven, account_frozen, sweep_destination_not_owned, invalid_fee_rate, "
              "unconfirmed_funds, nothing_to_sweep, sweep_incomplete, validation_error."})
@signed
@bp.arguments(ClaimSweepSchema)
@bp.response(201, SpendSchema)
def build_sweep(body, claim_id):
    """Build the sweep: every confirmed coin of the claimed account to a fresh address
    of `destination_account_id` (an account of the beneficiary's device), fee
    subtracted. Sign it with the recovery key and submit it to
    POST /v1/inheritance/claims/{id}/sweep/signatures."""
    with committing():
        return sweep.build(db.session, deps().cosigner, claim_id, g.device.id, body["destination_account_id"],
                           fee_rate=body.get("fee_rate"), now=utcnow())


@bp.route("/inheritance/claims/<claim_id>/sweep/signatures", methods=["POST"])
@errors({404: "Not your claim (`claim_not_found`).",
         409: "`error.code`: spend_not_open, reservation_lapsed.",
         410: "`error.code`: claim_closed (`details.state`).",
         422: "Nothing was signed. `error.code`: policy_denied (`details.reasons`: the inheritance_sweep rule — "
              "frozen by owner or staff, claim_not_released), claim_not_proven, sweep_not_built, "
              "inheritance_sweep_only, claim_not_released, sweep_destination_not_owned, chain_rejected, or a PSBT "
              "inspection code, validation_error."})
@signed
@bp.arguments(SignedPsbtSchema)
@bp.response(200, SpendSchema)
def submit_sweep(body, claim_id):
    """The recovery-key-signed sweep. The signing gate re-decides with the state of now
    (claim still released and proven, destination still the beneficiary's, the
    `inheritance_sweep` rule: a freeze denies it) and cosigns and broadcasts. Then the
    claim is completed and the old owner's device is revoked for the account."""
    with committing():
        spend = sweep.submit(db.session, deps().cosigner, claim_id, g.device.id, body["psbt"], utcnow())
    return refused_or(spend)


# -- staff --------------------------------------------------------------------------------------------
def staff_out(c, with_trail: bool = False) -> dict:
    out = {"claim_id": c.id, "account_id": c.account_id, "state": c.state,
           "beneficiary_device_id": c.beneficiary_device_id, "owner_device_id": c.owner_device_id,
           "waiting_days": c.waiting_days, "wait_ends_at": c.wait_ends_at, "next_reminder_at": c.next_reminder_at,
           "reminders_sent": c.reminders_sent, "released_at": c.released_at, "expires_at": c.expires_at,
           "proven": c.proven_at is not None, "sweep_txid": c.sweep_txid, "closed_reason": c.closed_reason,
           "history": c.history, "created_at": c.created_at}
    if with_trail:
        out["audit"] = [{"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "subject": e.subject,
                         "details": e.details} for e in staff.trail(db.session, c)]
    return iso(out)


@admin_bp.route("/inheritance/claims", methods=["GET"])
@staff_required("recovery:read")
@admin_bp.arguments(AdminClaimQuerySchema, location="query")
@admin_bp.response(200, StaffClaimListSchema)
def admin_list_claims(query):
    """Inheritance claims, newest first (optionally of one state)."""
    return {"claims": [staff_out(c) for c in staff.list_claims(db.session, query["state"], query["limit"])]}


@admin_bp.route("/inheritance/claims/<claim_id>", methods=["GET"])
@errors({404: "`error.code`: claim_not_found."})
@staff_required("recovery:read")
@admin_bp.response(200, StaffClaimSchema)
def admin_get_claim(claim_id):
    return staff_out(claims.get(db.session, claim_id), with_trail=True)


@admin_bp.route("/inheritance/claims/<claim_id>/cancel", methods=["POST"])
@errors({404: "`error.code`: claim_not_found.", 410: "`error.code`: claim_closed (`details.state`)."})
@staff_required("recovery:cancel")
@admin_bp.response(200, StaffClaimSchema)
def admin_cancel_claim(claim_id):
    """Support cancels a claim (audited; the beneficiary is told). Staff cannot shorten a wait."""
    with committing():
        return staff_out(claims.staff_cancel(db.session, ictx(), claim_id, g.staff_id, utcnow()))
