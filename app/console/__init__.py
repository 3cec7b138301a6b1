"""The staff console at /admin: server-rendered pages (Jinja2) with a little plain
JavaScript and no build step.

Sessions: an opaque cookie (`custos_admin`, Secure, HttpOnly, SameSite=Strict, path
/admin) naming a server-side row (admin.model.StaffSession; only its digest is stored),
15-minute idle timeout, password then TOTP (enrolled with a QR code at first login).
CSRF: every form carries a token = HMAC(SECRET_KEY, session digest or a pre-login seed),
checked on every POST. Every action goes through a confirmation page that says what will
happen; freezing, unfreezing and releasing a share ask for a fresh TOTP code there.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import Blueprint, abort, g, redirect, render_template, request, url_for

from admin import roles as rbac
from admin import services
from app.auth.staff import Principal
from app.deps import deps
from app.extensions import db
from store.base import utcnow

SESSION_COOKIE = "custos_admin"
SEED_COOKIE = "custos_admin_seed"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")

bp = Blueprint("console", __name__, url_prefix="/admin", template_folder="templates",
               static_folder="static", static_url_path="/static")


def register_console(app) -> None:
    from app.console import actions, views  # noqa: F401  (routes)
    app.register_blueprint(bp)


def _cookie(response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/admin", secure=deps().settings.admin_cookie_secure,
                        httponly=True, samesite="Strict")


def _seed() -> str:
    """What the CSRF token is bound to: the session, or a pre-login random seed."""
    if g.get("console_session") is not None:
        return g.console_session.id
    if "console_seed" not in g:
        g.console_seed = request.cookies.get(SEED_COOKIE) or ""
        if len(g.console_seed) < 20:
            g.console_seed, g.console_seed_new = secrets.token_urlsafe(24), True
    return g.console_seed


def csrf_token() -> str:
    key = deps().settings.secret_key.encode()
    return hmac.new(key, b"custos-admin-csrf|" + _seed().encode(), hashlib.sha256).hexdigest()


def staff() -> Principal | None:
    return g.get("staff")


@bp.before_request
def _load():
    now = utcnow()
    g.console_session = None
    row = services.session_for(db.session, request.cookies.get(SESSION_COOKIE), now)
    if row is not None:
        g.console_session = row
        member = services.get(db.session, row.staff_id)
        if row.stage == "full":
            g.staff = Principal(member.id, frozenset(member.roles), "session", None, row.id, member)
            g.staff_id = member.id
    db.session.commit()
    if request.method == "POST":
        sent = request.form.get("csrf_token", "")
        origin = request.headers.get("Origin")
        if not hmac.compare_digest(sent, csrf_token()) or (origin and origin != request.host_url.rstrip("/")):
            abort(400, description="The form expired or did not come from this console (CSRF check). "
                                   "Go back, reload and try again.")


@bp.after_request
def _headers(response):
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"   # keeps Origin on our own form posts
    response.headers["Cache-Control"] = "no-store"
    if g.get("console_seed_new"):
        _cookie(response, SEED_COOKIE, g.console_seed)
    return response


@bp.app_context_processor
def _template_globals():
    if not request.path.startswith("/admin"):
        return {}
    p = g.get("staff")
    return {"csrf_token": csrf_token, "me": p, "may": (lambda need: p is not None and p.may(need)),
            "idle_seconds": int(services.SESSION_IDLE_TIMEOUT.total_seconds())}


def console_required(*needs):
    """A page for a fully logged-in member whose roles allow one of `needs`."""
    import functools

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            p = staff()
            if p is None:
                return redirect(url_for("console.login", next=request.full_path if request.method == "GET" else None))
            if needs and not any(p.may(n) for n in needs):
                return render_template("console/error.html", status=403, title="Not allowed",
                                       message="Your role does not allow this page."), 403
            return fn(*args, **kwargs)
        return wrapper
    return decorate


@bp.errorhandler(Exception)
def _error(exc):
    from werkzeug.exceptions import HTTPException
    from app.errors import status_for
    db.session.rollback()
    if isinstance(exc, HTTPException):
        status, message = exc.code or 500, exc.description
    else:
        status = status_for(exc)
        if status is None or status >= 500:
            import logging
            logging.getLogger("custos.console").exception("console error: %s", type(exc).__name__)
            status, message = 500, "Something went wrong; the action was not done."
        else:
            message = str(exc)
    return render_template("console/error.html", status=status, title="Error", message=message), status


def role_names() -> tuple:
    return rbac.ROLES
