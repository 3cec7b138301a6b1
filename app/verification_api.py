"""/v1/accounts/{id}/verification: the owner's out-of-band channels (e-mail, TOTP), the
pending verifications, and confirming one with a TOTP code (issue #17). The e-mailed
links go to the server-rendered page in app/verify_page."""
from __future__ import annotations

from flask import g
from flask_smorest import Blueprint

from app.auth.device import signed
from app.cosigner_schemas import SpendSchema
from app.deps import deps
from app.extensions import db
from app.openapi_errors import errors
from app.spends_api import refused_or
from app.transaction import committing
from app.verification_schemas import (ChannelSchema, CodeInSchema, EmailCodeResultSchema, EmailInSchema,
                                      RequestOutcomeSchema, TotpEnrollmentSchema, VerificationStatusSchema)
from cosigner import accounts, spends
from store.base import utcnow
from verification import channels, services
from verification.errors import CodeRejected, RequestNotFound

bp = Blueprint("verification", __name__, url_prefix="/v1", description="Out-of-band verification")
CODE_ERRORS = {404: "`error.code`: account_not_found, spend_not_found, verification_not_found.",
               409: "`error.code`: no_pending_channel, verification_channel_missing, verification_closed, "
                    "verification_cancelled (the fifth wrong code cancelled it).",
               422: "A wrong, expired or reused code (`details.attempts_left`). `error.code`: "
                    "verification_code_rejected; or the spend was then refused: policy_denied, chain_rejected."}


def _account(account_id):
    return accounts.get_owned(db.session, account_id, g.device.id)


@bp.route("/accounts/<account_id>/verification", methods=["GET"])
@signed
@bp.response(200, VerificationStatusSchema)
def status(account_id):
    """The account's channels and its pending verifications."""
    account = _account(account_id)
    rows = [c for c in channels.usable(db.session, account.id)]
    from sqlalchemy import select
    from verification.model import VerificationChannel
    rows += list(db.session.scalars(select(VerificationChannel).where(
        VerificationChannel.account_id == account.id, VerificationChannel.state.in_(("pending", "waiting")))))
    return {"channels": rows, "pending": services.requests_of(db.session, account.id)}


@bp.route("/accounts/<account_id>/verification/email", methods=["POST"])
@signed
@errors({400: "`error.code`: invalid_email (nothing stored)."})
@bp.arguments(EmailInSchema)
@bp.response(202, EmailCodeResultSchema)
def set_email(body, account_id):
    """Register an e-mail address for out-of-band confirmations: a 6-digit code is mailed
    to it; confirm it with `/verification/email/confirm`. Replacing a confirmed address
    waits out the change delay and a confirmation on the channels in force."""
    with committing():
        return {"channel": channels.set_email(db.session, deps().cosigner, _account(account_id), body["email"],
                                              utcnow())}


@bp.route("/accounts/<account_id>/verification/email/confirm", methods=["POST"])
@signed
@errors({409: "`error.code`: no_pending_channel.", 422: "`error.code`: verification_code_rejected "
                                                         "(`details.attempts_left`; the fifth drops the address)."})
@bp.arguments(CodeInSchema)
@bp.response(200, ChannelSchema)
def confirm_email(body, account_id):
    with committing():
        row, left = channels.confirm_email(db.session, deps().cosigner, _account(account_id), body["code"], utcnow())
    if row.state == "pending" or (row.state == "retired" and row.confirmed_at is None):
        raise CodeRejected("wrong or expired code", details={"attempts_left": left})
    return row


@bp.route("/accounts/<account_id>/verification/totp", methods=["POST"])
@signed
@bp.response(201, TotpEnrollmentSchema)
def enroll_totp(account_id):
    """A new authenticator secret, shown once as an otpauth:// URI and a QR code. It
    counts only after `/verification/totp/confirm` with a first valid code."""
    from admin.credentials import qr_svg
    with committing():
        row, uri = channels.enroll_totp(db.session, deps().cosigner, _account(account_id), utcnow())
    return {"channel": row, "otpauth_uri": uri, "qr_svg": qr_svg(uri)}


@bp.route("/accounts/<account_id>/verification/totp/confirm", methods=["POST"])
@signed
@errors({409: "`error.code`: no_pending_channel.", 422: "`error.code`: verification_code_rejected."})
@bp.arguments(CodeInSchema)
@bp.response(200, ChannelSchema)
def confirm_totp_enrollment(body, account_id):
    with committing():
        row = channels.confirm_totp(db.session, deps().cosigner, _account(account_id), body["code"], utcnow())
    if row is None:
        raise CodeRejected("wrong or already used code")
    return row


@bp.route("/accounts/<account_id>/verification/<kind>", methods=["DELETE"])
@signed
@errors({400: "`error.code`: invalid_channel.", 409: "`error.code`: verification_channel_missing."})
@bp.response(200, ChannelSchema)
def remove_channel(account_id, kind):
    """Ask to remove a channel: it stays in force until the change delay has passed and
    the removal was confirmed on the channels in force (`channel.remove`)."""
    with committing():
        return channels.remove(db.session, deps().cosigner, _account(account_id), kind, utcnow())


@bp.route("/verifications/<request_id>", methods=["POST"])
@signed
@errors(CODE_ERRORS)
@bp.arguments(CodeInSchema)
@bp.response(200, RequestOutcomeSchema)
def confirm_request(body, request_id):
    """Confirm any pending verification of the owner's (a policy change, a channel
    change, a spend) with a TOTP code. A code counts once; five wrong codes cancel it."""
    with committing():
        outcome = services.confirm_totp(db.session, deps().cosigner, request_id, g.device.id, body["code"], utcnow())
    if not outcome.ok:
        services.raise_for(outcome)
    return {"request": outcome.request, "outcome": outcome.outcome}


@bp.route("/spends/<spend_id>/verification", methods=["POST"])
@signed
@errors(CODE_ERRORS)
@bp.arguments(CodeInSchema)
@bp.response(200, SpendSchema)
def verify_spend(body, spend_id):
    """Confirm a spend waiting in `awaiting_verification` with a TOTP code: the signing
    gate then re-decides it with the policy of now (it may broadcast, delay or refuse)."""
    with committing():
        spend, _ = spends.get_owned(db.session, spend_id, g.device.id)
        req = services.pending_for(db.session, "spend", spend.id)
        if req is None:
            raise RequestNotFound("this spend has no pending verification")
        outcome = services.confirm_totp(db.session, deps().cosigner, req.id, g.device.id, body["code"], utcnow())
    if not outcome.ok:
        services.raise_for(outcome)
    db.session.refresh(spend)
    return refused_or(spend)
