"""Every console action in one table, each with a confirmation page that says what will
happen. GET /admin/actions/<name>?… shows it; POST /admin/actions/<name> does it (CSRF
checked by the blueprint; a fresh TOTP code for the re-authenticated permissions)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable

from flask import abort, g, render_template, request, url_for

from admin import services
from admin.roles import REAUTH_PERMISSIONS, ROLES
from app.console import bp, console_required
from app.deps import deps
from app.extensions import db
from audit import services as audit
from store.base import utcnow


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str = "text"            # text | password | textarea | roles | scopes
    required: bool = True


@dataclass(frozen=True)
class Action:
    permission: str | None                     # None: any logged-in member
    params: tuple[str, ...]                    # carried from the link (hidden on the form)
    title: str
    describe: Callable[[dict], str]            # what will happen, in words
    run: Callable[[dict, dict], tuple[str, str]]   # (params, inputs) -> (message, link back)
    inputs: tuple[Field, ...] = field(default_factory=tuple)
    danger: bool = False

    @property
    def reauth(self) -> bool:
        return self.permission in REAUTH_PERMISSIONS


def _account(params):
    from cosigner.errors import AccountNotFound
    from cosigner.model import Account
    a = db.session.get(Account, params["account_id"])
    if a is None:
        raise AccountNotFound("no such account")
    return a


def _freeze(frozen: bool):
    def run(params, inputs):
        from cosigner import policy_service
        a, now = _account(params), utcnow()
        policy_service.freeze(db.session, a, by="staff", actor=g.staff.actor, frozen=frozen, now=now,
                              loosen_delay=dt.timedelta(seconds=deps().settings.policy_loosen_delay),
                              notify=deps().cosigner.notify)
        audit.record(db.session, actor=g.staff.actor, action="staff.account_frozen" if frozen
                     else "staff.account_unfrozen", subject=a.id, details={"reason": inputs["reason"]}, now=now)
        return (f"Account {a.id} is {'frozen' if frozen else 'unfrozen'}.",
                url_for("console.account", account_id=a.id))
    return run


def _spend_decision(decision: str):
    def run(params, inputs):
        from cosigner import spends
        s = spends.approve(db.session, deps().cosigner, params["spend_id"], kind="staff", approver=g.staff_id,
                           decision=decision, note=inputs.get("note") or None, now=utcnow())
        return f"Spend {s.id} is now {s.state}.", url_for("console.approvals")
    return run


def _case(fn_name: str):
    def run(params, inputs):
        from app.recovery_api import rctx
        from recovery import staff as recovery_staff
        now = utcnow()
        if fn_name == "cancel":
            case = recovery_staff.cancel(db.session, params["case_id"], g.staff_id, now)
        else:
            case = getattr(recovery_staff, fn_name)(db.session, rctx(), params["case_id"], g.staff_id, now)
        return f"Case {case.id} is now {case.state}.", url_for("console.case", case_id=case.id)
    return run


def _claim_cancel(params, inputs):
    from app.inheritance_api import ictx
    from inheritance import claims
    claim = claims.staff_cancel(db.session, ictx(), params["claim_id"], g.staff_id, utcnow())
    return f"Inheritance claim {claim.id} is now {claim.state}.", url_for("console.inheritance_claim",
                                                                          claim_id=claim.id)


def _staff(op: str):
    def run(params, inputs):
        by, now, sid = g.staff.actor, utcnow(), params.get("staff_id")
        if op == "create":
            m = services.create(db.session, inputs["staff_id"].strip().lower(), inputs["password"], inputs["roles"],
                                by=by, now=now, display_name=inputs.get("display_name") or None)
            return f"Created {m.id}; they set up TOTP at their first login.", url_for("console.staff_page")
        if op == "roles":
            m = services.set_roles(db.session, sid, inputs["roles"], by=by, now=now)
            return f"{m.id} now has roles: {', '.join(m.roles)}.", url_for("console.staff_page")
        getattr(services, op)(db.session, sid, by=by, now=now)
        return f"Done: {op.replace('_', ' ')} for {sid}.", url_for("console.staff_page")
    return run


def _token_create(params, inputs):
    row, token = services.create_token(db.session, g.staff_id, inputs["name"], inputs["scopes"], by=g.staff.actor,
                                       now=utcnow(), ttl=dt.timedelta(days=int(inputs.get("ttl_days") or 90)))
    g.new_token = token
    return f"Token {row.id} created. Copy it now: it is shown only once.", url_for("console.tokens")


def _token_revoke(params, inputs):
    owner = None if g.staff.may("staff:manage") else g.staff_id
    row = services.revoke_token(db.session, params["token_id"], by=g.staff.actor, now=utcnow(), owner=owner)
    return f"Token {row.id} is revoked.", url_for("console.tokens")


REASON = Field("reason", "Reason (goes to the audit log)", "textarea")
NOTE = Field("note", "Note (optional)", "textarea", required=False)

ACTIONS: dict[str, Action] = {
    "freeze": Action("accounts:freeze", ("account_id",), "Freeze account",
                     lambda p: f"Account {p['account_id']} will be frozen at once: the server will refuse to cosign "
                               "any spend until staff unfreeze it. The owner's phone is notified.",
                     _freeze(True), (REASON,), danger=True),
    "unfreeze": Action("accounts:unfreeze", ("account_id",), "Unfreeze account",
                       lambda p: f"The staff freeze on account {p['account_id']} will be lifted at once "
                                 "(a freeze the owner set stays).", _freeze(False), (REASON,), danger=True),
    "approve_spend": Action("spends:approve", ("spend_id",), "Approve spend",
                            lambda p: f"Your approval of spend {p['spend_id']} is recorded. If it completes the "
                                      "approvals the policy asks for, the server cosigns and broadcasts it now "
                                      "(or after its delay).", _spend_decision("approve"), (NOTE,)),
    "deny_spend": Action("spends:approve", ("spend_id",), "Deny spend",
                         lambda p: f"Spend {p['spend_id']} will be denied: nothing is signed, its coins are "
                                   "released and the owner is notified.", _spend_decision("deny"), (NOTE,),
                         danger=True),
    "verify_identity": Action("recovery:verify", ("case_id",), "Verify identity",
                              lambda p: f"You confirm that you verified the requester of case {p['case_id']} out of "
                                        "band. The case moves on as if the emailed code had been right; the security "
                                        "delay still applies.", _case("verify_identity")),
    "approve_release": Action("recovery:approve", ("case_id",), "Approve early release",
                              lambda p: f"Your approval to release the operator's share for case {p['case_id']} "
                                        "before the delay ends is recorded. A second approval by a different "
                                        "approver releases the share.", _case("approve_release"), danger=True),
    "cancel_case": Action("recovery:cancel", ("case_id",), "Cancel case",
                          lambda p: f"Recovery case {p['case_id']} will be cancelled; no share is released.",
                          _case("cancel"), danger=True),
    "cancel_claim": Action("recovery:cancel", ("claim_id",), "Cancel inheritance claim",
                           lambda p: f"Inheritance claim {p['claim_id']} will be cancelled: no share is released "
                                     "and the beneficiary is told it was declined.", _claim_cancel, danger=True),
    "staff_create": Action("staff:manage", (), "Create staff member",
                           lambda p: "A new staff member will be created with the roles you choose. They enroll "
                                     "TOTP (QR code) at their first login.", _staff("create"),
                           (Field("staff_id", "Username"), Field("display_name", "Display name", required=False),
                            Field("password", "Initial password (12+ characters)", "password"),
                            Field("roles", "Roles", "roles"))),
    "staff_roles": Action("staff:manage", ("staff_id",), "Change roles",
                          lambda p: f"{p['staff_id']}'s roles will be replaced by the ones you tick.",
                          _staff("roles"), (Field("roles", "Roles", "roles"),)),
    "staff_disable": Action("staff:manage", ("staff_id",), "Disable staff member",
                            lambda p: f"{p['staff_id']} will be disabled: their sessions end and their API tokens "
                                      "are revoked at once.", _staff("disable"), danger=True),
    "staff_enable": Action("staff:manage", ("staff_id",), "Enable staff member",
                           lambda p: f"{p['staff_id']} will be able to log in again.", _staff("enable")),
    "staff_reset_totp": Action("staff:manage", ("staff_id",), "Reset TOTP",
                               lambda p: f"{p['staff_id']}'s TOTP is forgotten and their sessions end; they set up "
                                         "a new one at their next login.", _staff("reset_totp"), danger=True),
    "staff_unlock": Action("staff:manage", ("staff_id",), "Unlock",
                           lambda p: f"{p['staff_id']}'s login lockout is lifted.", _staff("unlock")),
    "token_create": Action(None, (), "Create API token",
                           lambda p: "A new API token is created for you with the scopes you tick. It is shown once; "
                                     "only its digest is stored.", _token_create,
                           (Field("name", "Name"), Field("scopes", "Scopes", "scopes"),
                            Field("ttl_days", "Lifetime in days (1-365)", required=False))),
    "token_revoke": Action(None, ("token_id",), "Revoke API token",
                           lambda p: f"Token {p['token_id']} stops working at once.", _token_revoke, danger=True),
}


def _lookup(name: str) -> Action:
    action = ACTIONS.get(name)
    if action is None:
        abort(404)
    if action.permission and not g.staff.may(action.permission):
        abort(403, description="Your role does not allow this action.")
    return action


def _params(action: Action, source) -> dict:
    params = {k: (source.get(k) or "").strip() for k in action.params}
    if any(not v or len(v) > 64 for v in params.values()):
        abort(400, description="This action is missing what it applies to.")
    return params


def _inputs(action: Action) -> dict:
    out = {}
    for f in action.inputs:
        if f.kind in ("roles", "scopes"):
            value = request.form.getlist(f.name)
        else:
            value = (request.form.get(f.name) or "").strip() if f.kind != "password" else request.form.get(f.name, "")
        if f.required and not value:
            raise _Invalid(f"{f.label}: required.")
        if f.name == "reason" and len(value) < 3:
            raise _Invalid("Give a reason of at least 3 characters.")
        if f.name == "ttl_days" and value and not (value.isdigit() and 1 <= int(value) <= 365):
            raise _Invalid("Lifetime must be 1 to 365 days.")
        out[f.name] = value
    return out


class _Invalid(Exception):
    pass


def _scopes_for_me():
    from admin.roles import permissions_of
    return sorted(r for r in ROLES if r in g.staff.roles) + sorted(permissions_of(g.staff.roles))


@bp.route("/actions/<name>", methods=["GET"])
@console_required()
def confirm(name):
    action = _lookup(name)
    params = _params(action, request.args)
    return render_template("console/confirm.html", name=name, action=action, params=params,
                           description=action.describe(params), roles=ROLES, scopes=_scopes_for_me(), error=None)


@bp.route("/actions/<name>", methods=["POST"])
@console_required()
def do(name):
    action = _lookup(name)
    params = _params(action, request.form)

    def again(error, status):
        return render_template("console/confirm.html", name=name, action=action, params=params,
                               description=action.describe(params), roles=ROLES, scopes=_scopes_for_me(),
                               error=error), status
    try:
        inputs = _inputs(action)
    except _Invalid as exc:
        return again(str(exc), 400)
    if action.reauth:
        from admin.errors import ReauthRequired
        try:
            services.reauthenticate(db.session, g.staff.member, deps().cosigner.keyring, request.form.get("totp"),
                                    action=name, now=utcnow())
        except ReauthRequired:
            db.session.commit()               # the failure counts towards the lockout
            return again("That TOTP code is wrong or was already used; the action was not done.", 401)
        db.session.commit()                   # the used code cannot be replayed, whatever follows
    message, back = action.run(params, inputs)
    db.session.commit()
    return render_template("console/done.html", title=action.title, message=message, back=back,
                           token=g.get("new_token"))
