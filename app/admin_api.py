"""/v1/admin: operator staff endpoints (OpenAPI tag "Admin"). Bearer API tokens with
scopes (see app/auth/staff.py); each view names the permission it needs.

Accounts (lookup, detail without keys or shares, freeze/unfreeze with a reason), spends
awaiting staff approval (approve/deny with a note), the audit log (query, verify the
chain), the development outboxes, system status, staff members and tokens. Recovery
cases are served by app/recovery_admin_api.py under the same prefix.
"""
from __future__ import annotations

import datetime as dt

from flask import g
from flask_smorest import Blueprint

from admin import queries, services
from admin.errors import OutboxUnavailable
from admin.status import system_status
from app.admin_schemas import (AccountLookupSchema, AuditQuerySchema, MailOutboxQuerySchema, PushOutboxQuerySchema,
                               StaffCreateSchema, StaffDecisionSchema, StaffFreezeSchema, StaffRolesSchema)
from app.auth.staff import require, staff_required
from app.cosigner_schemas import PolicyOutSchema, SpendSchema
from app.deps import deps
from app.extensions import db
from app.transaction import committing
from app import response_schemas as rs
from audit import services as audit
from cosigner import policy_service, spends
from cosigner.errors import AccountNotFound
from cosigner.model import Account
from store.base import utcnow

bp = Blueprint("admin", __name__, url_prefix="/v1/admin", description="Admin: operator staff endpoints")


def _account(account_id: str) -> Account:
    account = db.session.get(Account, account_id)
    if account is None:
        raise AccountNotFound("no such account")
    return account


def staff_out(m) -> dict:
    return {"staff_id": m.id, "display_name": m.display_name, "roles": m.roles, "active": m.active,
            "totp_enrolled": m.totp_enrolled_at is not None, "locked_until": queries.iso(m.locked_until),
            "last_login_at": queries.iso(m.last_login_at), "created_at": queries.iso(m.created_at),
            "created_by": m.created_by}


def token_out(t) -> dict:
    return {"token_id": t.id, "staff_id": t.staff_id, "name": t.name, "scopes": t.scopes,
            "created_at": queries.iso(t.created_at), "expires_at": queries.iso(t.expires_at),
            "revoked_at": queries.iso(t.revoked_at), "last_used_at": queries.iso(t.last_used_at)}


# -- who am I, status ---------------------------------------------------------------------------
@bp.route("/me", methods=["GET"])
@staff_required
@bp.response(200, rs.StaffMeSchema)
def me():
    """The calling staff member: id, roles, credential kind and scopes."""
    p = g.staff
    return {"staff_id": p.staff_id, "roles": sorted(p.roles), "kind": p.kind,
            "scopes": list(p.scopes) if p.scopes is not None else None}


@bp.route("/status", methods=["GET"])
@staff_required("status:read")
@bp.response(200, rs.StaffStatusSchema)
def status():
    """Database, broker queue depths, workers seen recently, beat's last run, bitcoind
    reachability, chain tip height and age, chain-watcher lag."""
    d = deps()
    return system_status(db.session, d.settings, d.redis, d.bitcoind, utcnow())


# -- accounts -----------------------------------------------------------------------------------
@bp.route("/accounts", methods=["GET"])
@staff_required("accounts:read")
@bp.arguments(AccountLookupSchema, location="query")
@bp.response(200, rs.AccountListSchema)
def find_accounts(query):
    """Look accounts up by id or by the owner's device id."""
    rows = queries.find_accounts(db.session, account_id=query.get("account_id"), device_id=query.get("device_id"))
    return {"accounts": [queries.account_brief(a) for a in rows]}


@bp.route("/accounts/<account_id>", methods=["GET"])
@staff_required("accounts:read")
@bp.response(200, rs.AccountDetailSchema)
def get_account(account_id):
    """An account's policy, pending changes, recent spends and recovery cases — never keys,
    descriptors or shares."""
    return queries.account_detail(db.session, _account(account_id))


@bp.route("/accounts/<account_id>/freeze", methods=["POST"])
@staff_required("accounts:freeze", defer_reauth=True)
@bp.arguments(StaffFreezeSchema)
@bp.response(200, PolicyOutSchema)
def staff_freeze(body, account_id):
    """Staff freeze (`frozen: true`) or unfreeze (`frozen: false`, approver only),
    immediate both ways, with a reason; audited. API tokens also need `X-Staff-TOTP`."""
    require("accounts:freeze" if body["frozen"] else "accounts:unfreeze")
    with committing():
        account = _account(account_id)
        now = utcnow()
        policy_service.freeze(db.session, account, by="staff", actor=g.staff.actor, frozen=body["frozen"], now=now,
                              loosen_delay=dt.timedelta(seconds=deps().settings.policy_loosen_delay),
                              notify=deps().cosigner.notify)
        audit.record(db.session, actor=g.staff.actor, action="staff.account_frozen" if body["frozen"]
                     else "staff.account_unfrozen", subject=account.id, details={"reason": body["reason"]}, now=now)
        return {**policy_service.summary(db.session, account), "pending_change": None}


# -- spends -------------------------------------------------------------------------------------
@bp.route("/spends", methods=["GET"])
@staff_required("spends:read")
@bp.response(200, SpendSchema(many=True))
def awaiting_staff():
    """Spends awaiting approval, oldest first."""
    return queries.awaiting_staff(db.session)


@bp.route("/spends/<spend_id>/approvals", methods=["POST"])
@staff_required("spends:approve")
@bp.arguments(StaffDecisionSchema)
@bp.response(200, SpendSchema)
def staff_approve(body, spend_id):
    """A staff approval (or denial) of a spend routed to staff by the account's policy,
    with an optional note."""
    from app.spends_api import refused_or
    with committing():
        spend = spends.approve(db.session, deps().cosigner, spend_id, kind="staff", approver=g.staff_id,
                               decision=body["decision"], note=body.get("note"), now=utcnow())
    return refused_or(spend) if body["decision"] == "approve" else spend


# -- audit --------------------------------------------------------------------------------------
@bp.route("/audit", methods=["GET"])
@staff_required("audit:read")
@bp.arguments(AuditQuerySchema, location="query")
@bp.response(200, rs.AuditPageSchema)
def audit_log(query):
    """Audit events newest first, by subject, actor, action prefix and time; page with
    `before_seq`."""
    rows = queries.audit_events(db.session, **query)
    return {"events": [queries.audit_out(e) for e in rows],
            "next_before_seq": rows[-1].seq if len(rows) == query["limit"] else None}


@bp.route("/audit/verify", methods=["GET"])
@staff_required("audit:read")
@bp.response(200, rs.ChainReportSchema)
def audit_verify():
    """Walk the whole hash chain; report the first broken link (`first_broken_seq`)."""
    return queries.chain_report(db.session)


# -- development outboxes -----------------------------------------------------------------------
def _dev_only():
    if deps().settings.production:
        raise OutboxUnavailable("the outboxes are a development tool")


@bp.route("/outbox/push", methods=["GET"])
@staff_required("outbox:read")
@bp.arguments(PushOutboxQuerySchema, location="query")
@bp.response(200, rs.PushOutboxSchema)
def push_outbox(query):
    """Push notifications (content-free), newest first; by device, kind, since. Not in production."""
    _dev_only()
    return {"notifications": queries.push_outbox(db.session, query["limit"], device_id=query.get("device_id"),
                                                 kind=query.get("kind"), since=query.get("since"))}


@bp.route("/outbox/mail", methods=["GET"])
@staff_required("outbox:read")
@bp.arguments(MailOutboxQuerySchema, location="query")
@bp.response(200, rs.MailOutboxSchema)
def mail_outbox(query):
    """Outgoing mail, newest first, decrypted; by recipient address, kind, since, recovery
    case (development only: 404 in production)."""
    _dev_only()
    to_hash = None
    if query.get("email"):
        from recovery.secrets_box import email_hash, email_key, normalize_email
        to_hash = email_hash(email_key(deps().settings.secret_key), normalize_email(query["email"]) or "")
    return {"mails": queries.mail_outbox(db.session, deps().cosigner.keyring, query["limit"], contents=True,
                                         to_hash=to_hash, kind=query.get("kind"), since=query.get("since"),
                                         case_id=query.get("case_id"))}


# -- staff and tokens ---------------------------------------------------------------------------
@bp.route("/staff", methods=["GET"])
@staff_required("staff:manage")
@bp.response(200, rs.StaffListSchema)
def list_staff():
    return {"staff": [staff_out(m) for m in services.list_staff(db.session)]}


@bp.route("/staff", methods=["POST"])
@staff_required("staff:manage")
@bp.arguments(StaffCreateSchema)
@bp.response(201, rs.StaffMemberSchema)
def create_staff(body):
    """A new member with an initial password; TOTP is enrolled at their first login."""
    with committing():
        return staff_out(services.create(db.session, body["staff_id"], body["password"], body["roles"],
                                         by=g.staff.actor, now=utcnow(), display_name=body.get("display_name")))


@bp.route("/staff/<staff_id>/roles", methods=["PUT"])
@staff_required("staff:manage")
@bp.arguments(StaffRolesSchema)
@bp.response(200, rs.StaffMemberSchema)
def set_roles(body, staff_id):
    with committing():
        return staff_out(services.set_roles(db.session, staff_id, body["roles"], by=g.staff.actor, now=utcnow()))


@bp.route("/staff/<staff_id>/disable", methods=["POST"])
@staff_required("staff:manage")
@bp.response(200, rs.StaffMemberSchema)
def disable_staff(staff_id):
    """Disable: ends the member's sessions and revokes their tokens. Idempotent."""
    with committing():
        return staff_out(services.disable(db.session, staff_id, by=g.staff.actor, now=utcnow()))


@bp.route("/staff/<staff_id>/reset-totp", methods=["POST"])
@staff_required("staff:manage")
@bp.response(200, rs.StaffMemberSchema)
def reset_totp(staff_id):
    """Forget the member's TOTP: they enroll again at their next login."""
    with committing():
        return staff_out(services.reset_totp(db.session, staff_id, by=g.staff.actor, now=utcnow()))


@bp.route("/tokens", methods=["GET"])
@staff_required
@bp.response(200, rs.TokenListSchema)
def list_tokens():
    """Your API tokens (admins: everyone's)."""
    owner = None if g.staff.may("staff:manage") else g.staff_id
    return {"tokens": [token_out(t) for t in services.list_tokens(db.session, owner)]}


@bp.route("/tokens/<token_id>", methods=["DELETE"])
@staff_required
@bp.response(200, rs.TokenSchema)
def revoke_token(token_id):
    """Revoke one of your tokens (admins: anyone's). Idempotent."""
    owner = None if g.staff.may("staff:manage") else g.staff_id
    with committing():
        return token_out(services.revoke_token(db.session, token_id, by=g.staff.actor, now=utcnow(), owner=owner))
