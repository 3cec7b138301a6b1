"""Spends: build, submit the phone's signature (inspect → policy → cosign → broadcast),
read, cancel, bump."""
from __future__ import annotations

from flask import g
from flask_smorest import Blueprint

from app.auth.device import signed
from app.cosigner_schemas import (ApprovalInSchema, ApprovalsSchema, BumpSchema, SignedPsbtSchema, SpendCreateSchema,
                                  SpendListQuerySchema, SpendPageSchema, SpendSchema)
from app.deps import deps
from app.errors import ApiError
from app.extensions import db
from app.idempotency import idempotent
from app.transaction import committing
from cosigner import accounts, spend_lifecycle, spends
from store.base import utcnow

bp = Blueprint("spends", __name__, url_prefix="/v1", description="Spends (PSBT cosigning)")


@bp.route("/accounts/<account_id>/spends", methods=["POST"])
@signed
@idempotent
@bp.arguments(SpendCreateSchema)
@bp.response(201, SpendSchema)
def create_spend(body, account_id):
    """Build a PSBT from the account's own coins (they stay reserved for
    SPEND_RESERVATION_TTL); returns it with the explicit fee, inputs, outputs (change or
    external) and the policy preview. Verify the fee and change on the phone.
    422 `insufficient_funds` carries `shortfall_sat` in details."""
    with committing():
        account = accounts.get_owned(db.session, account_id, g.device.id)
        return spends.create(db.session, deps().cosigner, account, outputs=body["outputs"],
                             fee_rate=body.get("fee_rate_sat_vb"), conf_target=body.get("conf_target"),
                             subtract_fee_from=body["subtract_fee_from"], replaceable=body["replaceable"],
                             now=utcnow())


@bp.route("/accounts/<account_id>/spends", methods=["GET"])
@signed
@bp.arguments(SpendListQuerySchema, location="query")
@bp.response(200, SpendPageSchema)
def list_spends(query, account_id):
    """The account's spends, newest first, optionally only some states (`?state=built`,
    repeatable), paginated with `cursor`: find and cancel what an app left open."""
    account = accounts.get_owned(db.session, account_id, g.device.id)
    return spend_lifecycle.list_spends(db.session, account, states=query["state"], cursor=query.get("cursor"),
                                       limit=query["limit"])


@bp.route("/spends/<spend_id>/signatures", methods=["POST"])
@signed
@bp.arguments(SignedPsbtSchema)
@bp.response(200, SpendSchema)
def submit_signature(body, spend_id):
    """The phone-signed PSBT. Refused with a specific code (nothing signed) unless it is
    exactly the built transaction, every input and change output re-derives from the
    account, fees are within the hard caps, sighash is ALL and the phone's signature is
    valid. Idempotent for the same PSBT."""
    with committing():
        spend = spends.submit(db.session, deps().cosigner, spend_id, g.device.id, body["psbt"], utcnow())
    return refused_or(spend)


def refused_or(spend):
    """After the decision is committed: a spend the gate refused is reported as an error
    (nothing was signed, or bitcoind refused what was); otherwise it is the response."""
    if spend.state == "denied":
        raise ApiError("the account's policy refuses this spend", status=422, code="policy_denied",
                       details={"reasons": (spend.decision or {}).get("reasons", []), "spend_id": spend.id,
                                "rates": (spend.decision or {}).get("rates", {})})
    if spend.state == "failed":
        raise ApiError(f"bitcoind refused: {spend.error}", status=422, code="chain_rejected",
                       details={"reason": spend.error, "spend_id": spend.id})
    if spend.state == "expired":
        raise ApiError("the approval deadline has passed", status=409, code="approval_expired",
                       details={"spend_id": spend.id})
    return spend


@bp.route("/spends/<spend_id>", methods=["GET"])
@signed
@bp.response(200, SpendSchema)
def get_spend(spend_id):
    return spends.get_owned(db.session, spend_id, g.device.id)[0]


@bp.route("/spends/<spend_id>", methods=["DELETE"])
@signed
@bp.response(200, SpendSchema)
def cancel_spend(spend_id):
    """Cancel before broadcast. Idempotent."""
    with committing():
        return spends.cancel(db.session, deps().cosigner, spend_id, g.device.id, utcnow())


@bp.route("/spends/<spend_id>/bump", methods=["POST"])
@signed
@bp.arguments(BumpSchema)
@bp.response(201, SpendSchema)
def bump_spend(body, spend_id):
    """A replacement PSBT at `fee_rate` sat/vB (RBF); sign and submit it like any spend."""
    with committing():
        return spends.bump(db.session, deps().cosigner, spend_id, g.device.id, body["fee_rate"], utcnow())


def approvals_out(spend) -> dict:
    return {"spend": spend, "approvals": spends.approvals_of(db.session, spend.id)}


@bp.route("/spends/<spend_id>/approvals", methods=["GET"])
@signed
@bp.response(200, ApprovalsSchema)
def list_approvals(spend_id):
    """The spend summary and its approvals; for the owner and for approver devices."""
    from cosigner.approvers import visible_spend
    return approvals_out(visible_spend(db.session, spend_id, g.device.id))


@bp.route("/spends/<spend_id>/approvals", methods=["POST"])
@signed
@bp.arguments(ApprovalInSchema)
@bp.response(200, SpendSchema)
def approve_spend(body, spend_id):
    """Approve or deny a spend as one of the account's approver devices (not the owner's
    own device). K approvals release it; one denial ends it."""
    with committing():
        spend = spends.approve(db.session, deps().cosigner, spend_id, kind="device", approver=g.device.id,
                               decision=body["decision"], note=body.get("note"), now=utcnow())
    return refused_or(spend) if body["decision"] == "approve" else spend
