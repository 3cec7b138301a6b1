"""/v1/accounts/{id}/recovery (setup, status), /v1/recoveries (the recovery case: start,
OTP, holders' answers, cancel, status, complete), /v1/custody (holders' custody proofs)
and /v1/accounts/{id}/sweep (the recovery sweep)."""
from __future__ import annotations

import base64
import binascii

from flask import current_app, g
from flask_smorest import Blueprint

from app.auth.device import signed
from app.cosigner_schemas import SpendSchema
from app.deps import deps
from app.errors import RateLimited
from app.extensions import db
from app.ratelimit import client_ip, hit
from app.recovery_schemas import (CancelQuerySchema, CustodyAnswerSchema, OtpSchema, SealedShareSchema, SetupSchema,
                                  SignatureSchema, StartSchema, SweepSchema)
from app.transaction import committing
from app import response_schemas as rs
from app.openapi_errors import errors
from cosigner import accounts
from recovery import cases, complete as completion, custody, responses, setup as setups, sweep
from recovery import permissions  # noqa: F401  (registers the messaging rule)
from recovery.errors import CaseClosed, InvalidScheme, OtpRejected
from recovery.limits import COMPLETE_PATH
from recovery.otp import attempts_left
from recovery.secrets_box import email_hash, normalize_email, verification_phrase
from store.base import utcnow

bp = Blueprint("recovery", __name__, url_prefix="/v1", description="Social recovery")


def rctx():
    """The app's RecoveryContext (built on first use, sharing the cosigner keyring)."""
    ext = current_app.extensions
    if "custos_recovery" not in ext:
        from recovery.context import recovery_context
        d = deps()
        ext["custos_recovery"] = recovery_context(d.settings, d.cosigner.keyring)
    return ext["custos_recovery"]


def iso(value):
    """Datetimes as ISO 8601 strings, recursively (views here return plain dicts)."""
    import datetime as dt
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: iso(v) for k, v in value.items()}
    if isinstance(value, list):
        return [iso(v) for v in value]
    return value


def b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode()


def unb64(value: str, what: str, code: str, size: int | None = None) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if not raw or (size is not None and len(raw) != size):
        raise InvalidScheme(f"{what} must be base64" + (f" of {size} bytes" if size else ""), code=code)
    return raw


# -- setup and custody -------------------------------------------------------------------
def setup_out(setup, now) -> dict:
    from recovery.setup_changes import pending, view
    holders = setups.holders(db.session, setup.id)
    return iso({"account_id": setup.account_id, "setup_id": setup.id, "scheme": setup.scheme,
            "status": custody.compute_status(setup, holders, now), "created_at": setup.created_at,
            "holders": [{"holder_id": h.id, "kind": h.kind, "device_id": h.device_id, "label": h.label,
                         "role": h.role or "holder",
                         "group_index": h.group_index, "member_index": h.member_index,
                         "custody_public_key": b64(h.custody_public_key), "proven": custody.is_proven(h, now),
                         "proven_at": h.proven_at, "challenged_at": h.challenged_at} for h in holders],
            "pending_change": view(pending(db.session, setup.account_id))})


@bp.route("/accounts/<account_id>/recovery", methods=["PUT"])
@errors({400: "The setup is refused, nothing stored. `error.code`: invalid_scheme, invalid_share, share_mismatch, "
             "second_operator_share, operator_holder_missing, custody_key_mismatch, invalid_holder, invalid_email.",
         404: "Not your account (`account_not_found`).",
         409: "A recovery verified by OTP or staff is open: contest it first. `error.code`: recovery_in_progress "
              "(`details.cases`)."})
@signed
@bp.arguments(SetupSchema)
@bp.response(200, rs.SetupOutSchema)
def put_setup(body, account_id):
    """Register the account's SLIP-39 recovery setup: scheme, the operator's share (stored
    encrypted), holders with their custody keys, the OTP email (stored encrypted, looked
    up by keyed hash). The first setup applies at once. Replacing a setup in force is a
    privileged action (`recovery.replace_setup`): the answer is the setup still in force
    with `pending_change`, which replaces it (atomically) after `POLICY_LOOSEN_DELAY` and,
    when the account has a verification channel, the owner's out-of-band confirmation;
    announced to the owner's devices and the recovery e-mail in force, cancellable, void
    if the account is frozen, recovered or under a verified recovery by then."""
    now = utcnow()
    with committing():
        account = accounts.get_owned(db.session, account_id, g.device.id)
        setup, _change = setups.put(db.session, rctx(), account, body, actor=g.device.id, now=now,
                                    cosigner=deps().cosigner)
        return setup_out(setup, now)


@bp.route("/accounts/<account_id>/recovery/changes/<change_id>", methods=["DELETE"])
@errors({404: "`error.code`: account_not_found, setup_change_not_found."})
@signed
@bp.response(200, rs.SetupChangeOutSchema)
def cancel_setup_change(account_id, change_id):
    """Cancel the pending replacement of the recovery setup (its confirmation links stop
    working). Idempotent: a closed change is returned as it is."""
    from recovery.setup_changes import cancel, view
    now = utcnow()
    with committing():
        account = accounts.get_owned(db.session, account_id, g.device.id)
        return iso(view(cancel(db.session, account, change_id, actor=g.device.id, now=now)))


@bp.route("/accounts/<account_id>/recovery", methods=["GET"])
@signed
@bp.response(200, rs.SetupOutSchema)
def get_setup(account_id):
    """Holders, whether each proved custody recently, and the account's status:
    nominal / critical / at_risk."""
    account = accounts.get_owned(db.session, account_id, g.device.id)
    return setup_out(setups.current(db.session, account.id), utcnow())


CUSTODY_CHECKS = "6/hour"      # owner-requested custody checks per account (each messages every holder)


@bp.route("/accounts/<account_id>/recovery/custody-check", methods=["POST"])
@errors({404: "`error.code`: account_not_found, recovery_not_configured.",
         429: "`error.code`: rate_limited (6 custody checks an hour per account)."})
@signed
@bp.response(200, rs.CustodyCheckSchema)
def custody_check(account_id):
    """Challenge every device holder now (after a setup the status stays `at_risk` until
    holders answer; the daily job does the same). The previous unanswered challenge
    message of each holder is replaced. At most 6 an hour per account."""
    d = deps()
    now = utcnow()
    with committing():
        account = accounts.get_owned(db.session, account_id, g.device.id)
        setup = setups.current(db.session, account.id)
        retry = hit(d.limiter, CUSTODY_CHECKS, "custody-check", account.id)
        if retry is not None:
            raise RateLimited("custody checks are limited per account; retry later",
                              headers={"Retry-After": str(retry)}, details={"retry_after": retry})
        challenged = custody.challenge_setup(db.session, rctx(), setup, actor=g.device.id, now=now)
        return {"account_id": account.id, "challenged": challenged, "status": setup.custody_status}


@bp.route("/custody/challenges", methods=["GET"])
@signed
@bp.response(200, rs.ChallengeListSchema)
def custody_challenges():
    """Open custody challenges for the calling holder device."""
    return iso({"challenges": [{"holder_id": h.id, "challenge": b64(h.challenge), "challenged_at": h.challenged_at}
                               for h in custody.pending(db.session, g.device.id)]})


@bp.route("/custody/challenges/<holder_id>", methods=["POST"])
@signed
@bp.arguments(CustodyAnswerSchema)
@bp.response(200, rs.CustodyProvenSchema)
def custody_answer(body, holder_id):
    """Answer a challenge with the custody key's signature over
    "custos-custody-proof-v1\\0" ‖ holder id ‖ "\\0" ‖ challenge."""
    sig = unb64(body["signature"], "signature", "invalid_signature", 64)
    with committing():
        holder = custody.answer(db.session, holder_id, g.device.id, sig, utcnow())
        return iso({"holder_id": holder.id, "proven_at": holder.proven_at})


# -- the case ----------------------------------------------------------------------------
def case_out(case) -> dict:
    """The requester's view. Before verification it is the same for known and unknown
    emails (no account id, no challenge)."""
    out = {"case_id": case.id, "state": case.state, "otp_expires_at": case.otp_expires_at,
           "expires_at": case.expires_at, "otp_attempts_left": attempts_left(case.otp_attempts)}
    if case.state in ("requested", "failed") or case.account_id is None:
        return iso(out)
    received = responses.received(db.session, case.id)
    out.update({
        "account_id": case.account_id, "verified_by": "staff" if (case.verified_by or "").startswith("staff") else "otp",
        "delay_ends_at": case.delay_ends_at, "next_reminder_at": case.next_reminder_at,
        "verification_phrase": verification_phrase(case.id, case.sealing_key),
        "challenge": b64(case.challenge), "complete_path": "/".join(str(i) for i in COMPLETE_PATH),
        "sealed_shares": [{"holder_id": r.holder_id, "sealed_share": b64(r.sealed)} for r in received if r.sealed],
        "declined": [r.holder_id for r in received if r.declined],
        "operator_share_sealed": b64(case.released_share), "released_at": case.released_at,
        "early_release": case.early_release})
    return iso(out)


@bp.route("/recoveries", methods=["POST"])
@errors({400: "`error.code`: invalid_email, invalid_sealing_key (the same for known and unknown addresses).",
         429: "Too many recovery starts for this address or email, or requests from this device. "
              "`error.code`: rate_limited (Retry-After)."})
@signed
@bp.arguments(StartSchema)
@bp.response(202, rs.CaseOutSchema)
def start(body):
    """Start a recovery from a newly registered device. The answer is the same whether
    or not the email is registered; if it is, a 6-digit code (10 minutes) is emailed.
    Rate-limited per email address and per client IP."""
    d = deps()
    sealing_key = unb64(body["sealing_key"], "sealing_key", "invalid_sealing_key", 32)
    address = normalize_email(body["email"])
    if address is None:
        raise InvalidScheme("email must be an email address", code="invalid_email")
    for limit, scope, key in ((d.settings.ratelimit_recovery_ip, "recovery-ip", client_ip()),
                              (d.settings.ratelimit_recovery_email, "recovery-email",
                               email_hash(rctx().email_key, address))):
        retry = hit(d.limiter, limit, scope, key)
        if retry is not None:
            raise RateLimited("too many recovery requests; retry later", headers={"Retry-After": str(retry)},
                              details={"retry_after": retry})
    with committing():
        case = cases.start(db.session, rctx(), device_id=g.device.id, email=address, sealing_key=sealing_key,
                           now=utcnow())
        return {**case_out(case), "message": "If this address belongs to a wallet, a code was sent to it."}


@bp.route("/recoveries/<case_id>", methods=["GET"])
@signed
@bp.response(200, rs.CaseOutSchema)
def get_case(case_id):
    """State, deadlines, the sealed contact shares received and, once released, the
    operator's share sealed to the requester's key."""
    return case_out(cases.get_for_requester(db.session, case_id, g.device.id))


@bp.route("/recoveries/<case_id>/otp", methods=["POST"])
@errors({409: "`error.code`: otp_already_verified.",
         410: "`error.code`: case_failed (the fifth wrong code), case_closed.",
         422: "`error.code`: otp_invalid (`details.attempts_left`), otp_expired, validation_error.",
         429: "The guessing budget of this email/account is spent: nothing was evaluated. `error.code`: "
              "otp_budget_exhausted (`details.retry_after`), rate_limited."})
@signed
@bp.arguments(OtpSchema)
@bp.response(200, rs.CaseOutSchema)
def verify_otp(body, case_id):
    """Verify the emailed code: the case moves to collecting and the security delay
    starts. A wrong code uses one of 5 attempts; the fifth fails the case."""
    with committing():
        outcome = cases.verify_otp(db.session, rctx(), case_id, g.device.id, body["otp"], utcnow())
    if outcome.ok:
        return case_out(outcome.case)
    if outcome.case.state == "failed":
        raise CaseClosed("too many wrong codes: this recovery case failed", code="case_failed",
                         details={"state": "failed"})
    if outcome.expired:
        raise OtpRejected("the code expired; ask for a new one", code="otp_expired",
                          details={"attempts_left": outcome.attempts_left})
    raise OtpRejected("wrong code", details={"attempts_left": outcome.attempts_left})


@bp.route("/recoveries/<case_id>/otp/resend", methods=["POST"])
@signed
@bp.response(200, rs.CaseOutSchema)
def resend_otp(case_id):
    """Send a new code (the old one stops working); at most one per 30 seconds."""
    with committing():
        return case_out(cases.resend(db.session, rctx(), case_id, g.device.id, utcnow()))


@bp.route("/recoveries/requests", methods=["GET"])
@signed
@bp.response(200, rs.HolderRequestListSchema)
def holder_requests():
    """Open cases where the caller holds a share (with the requester's sealing key and
    the verification phrase to compare by phone)."""
    items = responses.requests_for(db.session, g.device.id)
    return iso({"requests": [{**i, "sealing_key": b64(i["sealing_key"])} for i in items]})


@bp.route("/recoveries/<case_id>/shares", methods=["POST"])
@signed
@bp.arguments(SealedShareSchema)
@bp.response(201, rs.HolderResponseSchema)
def give_share(body, case_id):
    """Hand in your share sealed (NaCl sealed box) to the requester's sealing key."""
    sealed = unb64(body["sealed_share"], "sealed_share", "invalid_sealed_share")
    with committing():
        row = responses.respond(db.session, rctx(), case_id, g.device.id, sealed=sealed, now=utcnow())
        return {"case_id": row.case_id, "holder_id": row.holder_id, "response": "sealed_share"}


@bp.route("/recoveries/<case_id>/decline", methods=["POST"])
@signed
@bp.response(200, rs.HolderResponseSchema)
def decline(case_id):
    with committing():
        row = responses.respond(db.session, rctx(), case_id, g.device.id, sealed=None, now=utcnow())
        return {"case_id": row.case_id, "holder_id": row.holder_id, "response": "declined"}


@bp.route("/recoveries/<case_id>", methods=["DELETE"])
@errors({404: "Neither the account's owner nor the requester (`case_not_found`).",
         410: "`error.code`: case_closed (`details.state`)."})
@signed
@bp.arguments(CancelQuerySchema, location="query")
@bp.response(200, rs.CaseStateSchema)
def cancel(query, case_id):
    """An existing device of the account cancels (contests) the recovery; `?freeze=true`
    also asks for the account to be frozen. The requester may withdraw its own case the
    same way (the owner and asked holders are told). Nothing is released."""
    with committing():
        case = cases.cancel(db.session, rctx(), case_id, g.device.id, freeze=query["freeze"], now=utcnow())
        return {"case_id": case.id, "state": case.state}


@bp.route("/recoveries/<case_id>/complete", methods=["POST"])
@signed
@bp.arguments(SignatureSchema)
@bp.response(200, rs.CompletedSchema)
def complete(body, case_id):
    """Prove the rebuilt recovery key; the caller becomes the account's owner, the old
    devices are revoked and the account enters recovery-sweep mode."""
    text = body["signature"].strip()
    try:
        sig = bytes.fromhex(text)
    except ValueError:
        sig = unb64(text, "signature", "invalid_signature")
    with committing():
        case = completion.complete(db.session, rctx(), case_id, g.device.id, sig, utcnow())
        return {"case_id": case.id, "state": case.state, "account_id": case.account_id, "mode": "sweep"}


@bp.route("/accounts/<account_id>/sweep", methods=["POST"])
@signed
@bp.arguments(SweepSchema)
@bp.response(201, SpendSchema)
def build_sweep(body, account_id):
    """Build the recovery sweep: every confirmed UTXO to a fresh address of
    `destination_account_id` (an account of the caller), fee subtracted. Sign it with
    the recovery key and submit it like any spend (POST /v1/spends/{id}/signatures)."""
    with committing():
        return sweep.build(db.session, deps().cosigner, account_id, g.device.id, body["destination_account_id"],
                           fee_rate=body.get("fee_rate"), now=utcnow())
