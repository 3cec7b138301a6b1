"""The out-of-band verification page at /verify (issue #17): server-rendered (Jinja2),
no JavaScript, no build step, a strict Content-Security-Policy.

The e-mail carries two links, `/verify?view_token=…&token=<confirm token>` and the same
with the cancel token (parameter names the log redaction knows as secret). GET shows the request's summary (what, account, amount,
destinations, fee — nothing else) and the one button its token allows; the button POSTs
the tokens back with a CSRF token (HMAC of SECRET_KEY over the view token's digest) and
an Origin check. Tokens travel in the query and the form only, never in the path, so
request logs (which log the path) never see them. An unknown, used, expired or malformed
link gets the same plain 404 page, with no detail.
"""
from __future__ import annotations

import logging

from flask import Blueprint, render_template, request

from app.deps import deps
from app.extensions import db
from store.base import utcnow
from verification import services, tokens
from verification.errors import LinkInvalid

CSP = ("default-src 'none'; style-src 'self'; img-src 'none'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
OUTCOMES = {"broadcast": "Confirmed. The spend was signed and sent to the network.",
            "delayed": "Confirmed. The spend now waits out the account's delay before it is sent.",
            "awaiting_approval": "Confirmed. The spend now waits for the account's approvers.",
            "applied": "Confirmed. The change is in force.",
            "confirmed": "Confirmed. The change takes effect when its waiting time is over.",
            "cancelled": "Cancelled. Nothing was sent or changed."}
REFUSED = "Confirmed, but the account's policy refuses it now (for example, the account was frozen): nothing was sent."

bp = Blueprint("verify_page", __name__, url_prefix="/verify", template_folder="templates",
               static_folder="static", static_url_path="/static")
log = logging.getLogger("custos.verify")


def register_verify_page(app) -> None:
    app.register_blueprint(bp)


@bp.after_request
def _headers(response):
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"     # no other site sees our URL; our POST keeps Origin
    response.headers["Cache-Control"] = "no-store"
    return response


def _refused(status: int = 404):
    return render_template("verify/refused.html"), status


@bp.route("", methods=["GET"])
def show():
    db.session.rollback()
    try:
        req, what = services.by_link(db.session, request.args.get("view_token"), request.args.get("token"), utcnow())
    except LinkInvalid:
        return _refused()
    csrf = tokens.csrf_token(deps().settings.secret_key, req.view_digest)
    return render_template("verify/page.html", summary=req.summary, what=what, view_token=request.args["view_token"],
                           token=request.args["token"], csrf=csrf, expires_at=req.expires_at)


@bp.route("", methods=["POST"])
def decide():
    v, t = request.form.get("view_token"), request.form.get("token")
    origin = request.headers.get("Origin")
    if origin and origin != request.host_url.rstrip("/"):
        return _refused(403)
    if not tokens.well_formed(v) or not tokens.csrf_ok(deps().settings.secret_key, tokens.digest(v),
                                                      request.form.get("csrf_token")):
        return render_template("verify/refused.html", csrf=True), 400
    try:
        what, outcome = services.decide_by_link(db.session, deps().cosigner, v, t, utcnow())
        db.session.commit()
    except LinkInvalid:
        db.session.rollback()
        return _refused()
    except Exception as exc:                        # never a stack trace or a detail on this page
        db.session.rollback()
        log.error("verification page: %s", type(exc).__name__)
        return render_template("verify/refused.html", failed=True), 500
    message = OUTCOMES.get(outcome, REFUSED) if what == "confirm" else OUTCOMES["cancelled"]
    return render_template("verify/done.html", message=message, what=what)
