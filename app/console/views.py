"""Console pages: login + TOTP (with enrollment), dashboard, approvals queue, accounts,
recovery queue and case page, audit log with chain status, staff, tokens, outboxes."""
from __future__ import annotations

from flask import g, make_response, redirect, render_template, request, url_for

from admin import queries, services
from admin.status import system_status
from app.console import SESSION_COOKIE, _cookie, bp, console_required, csrf_token  # noqa: F401
from app.deps import deps
from app.extensions import db
from app.ratelimit import client_ip
from store.base import utcnow

LOGIN_ERRORS = {"bad_credentials": "Wrong username or password.",
                "locked": "Too many wrong codes: this account is locked for a while. Ask an admin.",
                "bad_code": "That code is wrong or was already used. Wait for the next one."}


def login_guard():
    """The console's login throttles (admin.login_guard), built once per app."""
    from flask import current_app
    from admin.login_guard import LoginGuard, LoginLimits
    ext = current_app.extensions
    if "custos_login_guard" not in ext:
        from limits.storage import storage_from_string
        from limits.strategies import FixedWindowRateLimiter
        d = deps()
        # the console's login budgets live beside the request limiter's counters: Redis when
        # configured (shared by every API process), else this process's memory
        strategy = FixedWindowRateLimiter(storage_from_string(d.settings.redis_url or "memory://"))
        ext["custos_login_guard"] = LoginGuard(strategy, LoginLimits(
            d.settings.ratelimit_console_login_ip, d.settings.ratelimit_console_login_pair,
            d.settings.ratelimit_console_login_user), enabled=d.limiter.enabled)
    return ext["custos_login_guard"]


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/admin") and not value.startswith("//") and "\\" not in value:
        return value
    return url_for("console.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        if g.get("staff") is not None:
            return redirect(url_for("console.dashboard"))
        return render_template("console/login.html", next=request.args.get("next", ""))
    username, ip = request.form.get("username", ""), client_ip()
    guard = login_guard()
    wait = guard.before(ip, username)                 # before any argon2 work
    if wait is not None:
        response = make_response(render_template(
            "console/login.html", error=f"Too many attempts. Try again in {wait} seconds.",
            next=request.form.get("next", "")), 429)
        response.headers["Retry-After"] = str(wait)
        return response
    result = services.login_password(db.session, username, request.form.get("password", ""), utcnow())
    if result.ok:
        guard.succeeded(ip, username)
    elif result.error == "bad_credentials" and guard.failed(ip, username):
        services.login_throttled(db.session, username, utcnow())
    db.session.commit()
    if not result.ok:
        return render_template("console/login.html", error=LOGIN_ERRORS[result.error],
                               next=request.form.get("next", "")), 401
    response = make_response(redirect(url_for("console.second_factor", next=request.form.get("next", ""))))
    _cookie(response, SESSION_COOKIE, result.session_key)
    return response


@bp.route("/totp", methods=["GET", "POST"])
def second_factor():
    row = g.get("console_session")
    if row is None:
        return redirect(url_for("console.login"))
    if row.stage == "full":
        return redirect(url_for("console.dashboard"))
    member = services.get(db.session, row.staff_id)
    keyring = deps().cosigner.keyring
    error = None
    if request.method == "POST":
        result = services.login_totp(db.session, row, keyring, request.form.get("code", ""), utcnow())
        db.session.commit()
        if result.ok:
            return redirect(_safe_next(request.form.get("next")))
        if result.error == "locked":
            return redirect(url_for("console.login"))
        error = LOGIN_ERRORS[result.error]
    qr = secret = None
    if row.stage == "enroll":
        secret = services.enrollment_secret(member, keyring)
        qr = services.enrollment_qr(member, keyring)
        db.session.commit()
    return render_template("console/totp.html", enrolling=row.stage == "enroll", qr=qr, secret=secret,
                           member=member, error=error, next=request.args.get("next", request.form.get("next", ""))), \
        (401 if error else 200)


@bp.route("/logout", methods=["POST"])
def logout():
    row = g.get("console_session")
    if row is not None:
        services.logout(db.session, row, utcnow())
        db.session.commit()
    response = make_response(redirect(url_for("console.login")))
    response.delete_cookie(SESSION_COOKIE, path="/admin")
    return response


@bp.route("/", methods=["GET"])
@console_required()
def dashboard():
    d = deps()
    now = utcnow()
    status = system_status(db.session, d.settings, d.redis, d.bitcoind, now)
    counts = {"awaiting_approval": len(queries.awaiting_staff(db.session))}
    cases = _cases(None)
    counts["open_cases"] = len([c for c in cases if c.state in _open_states()])
    return render_template("console/dashboard.html", status=status, counts=counts)


@bp.route("/approvals", methods=["GET"])
@console_required("spends:read")
def approvals():
    return render_template("console/approvals.html",
                           spends=[queries.spend_brief(s) for s in queries.awaiting_staff(db.session)])


@bp.route("/accounts", methods=["GET"])
@console_required("accounts:read")
def accounts():
    q = (request.args.get("q") or "").strip()
    found = []
    if q:
        found = queries.find_accounts(db.session, account_id=q) or queries.find_accounts(db.session, device_id=q)
        if len(found) == 1 and found[0].id == q:
            return redirect(url_for("console.account", account_id=q))
    return render_template("console/accounts.html", q=q, accounts=[queries.account_brief(a) for a in found])


@bp.route("/accounts/<account_id>", methods=["GET"])
@console_required("accounts:read")
def account(account_id):
    from cosigner.errors import AccountNotFound
    from cosigner.model import Account
    row = db.session.get(Account, account_id)
    if row is None:
        raise AccountNotFound("no such account")
    return render_template("console/account.html", a=queries.account_detail(db.session, row))


def _open_states():
    try:
        from recovery.machine import OPEN_STATES
        return OPEN_STATES
    except ImportError:
        return ()


def _cases(state):
    try:
        from recovery import staff as recovery_staff
    except ImportError:
        return []
    return recovery_staff.list_cases(db.session, state or None, 200)


@bp.route("/recoveries", methods=["GET"])
@console_required("recovery:read")
def recoveries():
    from recovery.machine import STATES
    state = request.args.get("state") or None
    if state not in STATES:
        state = None
    return render_template("console/recoveries.html", cases=_cases(state), state=state, states=STATES)


@bp.route("/recoveries/<case_id>", methods=["GET"])
@console_required("recovery:read")
def case(case_id):
    from app.recovery_admin_api import admin_case_out
    from recovery import cases
    return render_template("console/case.html", c=admin_case_out(cases.get(db.session, case_id), with_trail=True))


@bp.route("/inheritance", methods=["GET"])
@console_required("recovery:read")
def inheritance_claims():
    from inheritance import staff as inheritance_staff
    from inheritance.machine import STATES
    state = request.args.get("state") or None
    if state not in STATES:
        state = None
    return render_template("console/inheritance.html", claims=inheritance_staff.list_claims(db.session, state, 200),
                           state=state, states=STATES)


@bp.route("/inheritance/<claim_id>", methods=["GET"])
@console_required("recovery:read")
def inheritance_claim(claim_id):
    from app.inheritance_api import staff_out
    from inheritance import claims
    return render_template("console/inheritance_claim.html",
                           c=staff_out(claims.get(db.session, claim_id), with_trail=True))


@bp.route("/audit", methods=["GET"])
@console_required("audit:read")
def audit():
    import datetime as dt
    args = {k: (request.args.get(k) or "").strip() or None for k in ("subject", "actor", "action")}
    before = request.args.get("before_seq", "")
    since = request.args.get("since", "")
    try:
        args["before_seq"] = int(before) if before else None
        args["since"] = dt.datetime.fromisoformat(since).replace(tzinfo=dt.timezone.utc) if since else None
    except ValueError:
        args["before_seq"] = args["since"] = None
    report = queries.chain_report(db.session)
    rows = queries.audit_events(db.session, limit=100, **args)
    events = [queries.audit_out(e, report["first_broken_seq"]) for e in rows]
    return render_template("console/audit.html", report=report, events=events, args=args,
                           next_before=rows[-1].seq if len(rows) == 100 else None)


@bp.route("/staff", methods=["GET"])
@console_required("staff:manage")
def staff_page():
    from admin.roles import ROLES
    return render_template("console/staff.html", members=services.list_staff(db.session), roles=ROLES, now=utcnow())


@bp.route("/tokens", methods=["GET"])
@console_required()
def tokens():
    from admin.roles import PERMISSIONS, ROLES, permissions_of
    mine = sorted(r for r in ROLES if r in g.staff.roles) + sorted(permissions_of(g.staff.roles))
    return render_template("console/tokens.html", tokens=services.list_tokens(db.session, g.staff_id),
                           scopes=mine, all_perms=PERMISSIONS, now=utcnow())


@bp.route("/outbox", methods=["GET"])
@console_required("outbox:read")
def outbox():
    if deps().settings.production:
        return render_template("console/error.html", status=404, title="Not here",
                               message="The outboxes are a development tool."), 404
    return render_template("console/outbox.html", pushes=queries.push_outbox(db.session, 50),
                           mails=queries.mail_outbox(db.session, deps().cosigner.keyring, 50, contents=True))
