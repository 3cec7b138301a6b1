"""/v1/admin/recoveries: operator staff on recovery cases (interim STAFF_API_KEYS bearer
auth): list, inspect with the audit trail, verify an identity instead of the OTP,
approve an early release (two different staff members), cancel."""
from __future__ import annotations

from flask import g
from flask_smorest import Blueprint

from app.auth.staff import staff_required
from app.extensions import db
from app.recovery_api import b64, iso, rctx
from app.recovery_schemas import AdminListQuerySchema
from app.transaction import committing
from app import response_schemas as rs
from recovery import cases, responses, staff
from store.base import utcnow

bp = Blueprint("recovery_admin", __name__, url_prefix="/v1/admin", description="Recovery cases (staff)")


def admin_case_out(case, with_trail: bool = False) -> dict:
    out = {"case_id": case.id, "account_id": case.account_id, "state": case.state,
           "requester_device_id": case.requester_device_id, "verified_by": case.verified_by,
           "otp_attempts": case.otp_attempts, "delay_ends_at": case.delay_ends_at, "expires_at": case.expires_at,
           "released_at": case.released_at, "early_release": case.early_release,
           "staff_approvals": case.staff_approvals, "closed_reason": case.closed_reason,
           "history": case.history, "created_at": case.created_at,
           "responses": [{"holder_id": r.holder_id, "device_id": r.device_id,
                          "response": "declined" if r.declined else "sealed_share", "at": r.created_at}
                         for r in responses.received(db.session, case.id)],
           "sealing_key": b64(case.sealing_key)}
    if with_trail:
        out["audit"] = [{"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "subject": e.subject,
                         "details": e.details} for e in staff.trail(db.session, case)]
    return iso(out)


@bp.route("/recoveries", methods=["GET"])
@staff_required
@bp.arguments(AdminListQuerySchema, location="query")
@bp.response(200, rs.StaffCaseListSchema)
def list_cases(query):
    """Cases naming an account (decoys for unknown emails are not listed), newest first."""
    return {"cases": [admin_case_out(c) for c in staff.list_cases(db.session, query["state"], query["limit"])]}


@bp.route("/recoveries/<case_id>", methods=["GET"])
@staff_required
@bp.response(200, rs.StaffCaseSchema)
def get_case(case_id):
    return admin_case_out(cases.get(db.session, case_id), with_trail=True)


@bp.route("/recoveries/<case_id>/verify-identity", methods=["POST"])
@staff_required
@bp.response(200, rs.StaffCaseSchema)
def verify_identity(case_id):
    """Identity verified out of band instead of the OTP; the security delay still applies."""
    with committing():
        return admin_case_out(staff.verify_identity(db.session, rctx(), case_id, g.staff_id, utcnow()))


@bp.route("/recoveries/<case_id>/approve-release", methods=["POST"])
@staff_required
@bp.response(200, rs.StaffCaseSchema)
def approve_release(case_id):
    """One approval of an early release; the second, by a different staff member,
    releases the operator's share before the delay ends."""
    with committing():
        return admin_case_out(staff.approve_release(db.session, rctx(), case_id, g.staff_id, utcnow()))


@bp.route("/recoveries/<case_id>/cancel", methods=["POST"])
@staff_required
@bp.response(200, rs.StaffCaseSchema)
def cancel_case(case_id):
    with committing():
        return admin_case_out(staff.cancel(db.session, case_id, g.staff_id, utcnow()))
