"""/v1/accounts/{id}/policy: versioned rules, pending loosening changes, panic freeze;
/v1/admin: staff freeze/unfreeze and staff approvals (interim staff auth)."""
from __future__ import annotations

import datetime as dt

from flask import g
from flask_smorest import Blueprint

from app.auth.device import signed
from app.auth.staff import staff_required
from app.cosigner_schemas import (ApprovalInSchema, FreezeSchema, PolicyChangeSchema, PolicyOutSchema,
                                  PolicyRulesSchema, SpendSchema)
from app.deps import deps
from app.extensions import db
from app.transaction import committing
from cosigner import accounts, policy_service, spends
from cosigner.errors import AccountNotFound
from cosigner.model import Account, Spend
from store.base import utcnow

bp = Blueprint("policy", __name__, url_prefix="/v1", description="Spending policy")
admin = Blueprint("admin_policy", __name__, url_prefix="/v1/admin", description="Operator staff (admin)")


def _delay() -> dt.timedelta:
    return dt.timedelta(seconds=deps().settings.policy_loosen_delay)


def _out(account, change=None) -> dict:
    summary = policy_service.summary(db.session, account)
    return {**summary, "pending_change": change}


@bp.route("/accounts/<account_id>/policy", methods=["GET"])
@signed
@bp.response(200, PolicyOutSchema)
def get_policy(account_id):
    """The rules in force, their version, and pending loosening changes."""
    return _out(accounts.get_owned(db.session, account_id, g.device.id))


@bp.route("/accounts/<account_id>/policy", methods=["PUT"])
@signed
@bp.arguments(PolicyRulesSchema)
@bp.response(200, PolicyOutSchema)
def put_policy(rules, account_id):
    """Replace the rules. What tightens applies at once; what loosens (a relaxed rule, a
    new allowlist entry or approver, a lifted freeze) becomes a pending change effective
    after the loosening delay, announced to the owner and cancellable."""
    with committing():
        account = accounts.get_owned(db.session, account_id, g.device.id)
        _, change = policy_service.set_rules(db.session, account, rules, actor=g.device.id, now=utcnow(),
                                             loosen_delay=_delay(), notify=deps().cosigner.notify)
        return _out(account, change)


@bp.route("/accounts/<account_id>/policy/changes", methods=["GET"])
@signed
@bp.response(200, PolicyChangeSchema(many=True))
def list_changes(account_id):
    account = accounts.get_owned(db.session, account_id, g.device.id)
    return policy_service.changes(db.session, account.id)


@bp.route("/accounts/<account_id>/policy/changes/<change_id>", methods=["DELETE"])
@signed
@bp.response(200, PolicyChangeSchema)
def cancel_change(account_id, change_id):
    """Cancel a pending change. Idempotent."""
    with committing():
        account = accounts.get_owned(db.session, account_id, g.device.id)
        return policy_service.cancel_change(db.session, account, change_id, actor=g.device.id, now=utcnow())


@bp.route("/accounts/<account_id>/freeze", methods=["POST"])
@signed
@bp.arguments(FreezeSchema)
@bp.response(200, PolicyOutSchema)
def freeze(body, account_id):
    """Panic freeze (immediate). `{"frozen": false}` asks to lift it: a loosening, so it
    waits out the delay like any other."""
    with committing():
        account = accounts.get_owned(db.session, account_id, g.device.id)
        _, change = policy_service.freeze(db.session, account, by="owner", actor=g.device.id, frozen=body["frozen"],
                                          now=utcnow(), loosen_delay=_delay(), notify=deps().cosigner.notify)
        return _out(account, change)


@admin.route("/accounts/<account_id>/freeze", methods=["POST"])
@staff_required
@admin.arguments(FreezeSchema)
@admin.response(200, PolicyOutSchema)
def staff_freeze(body, account_id):
    """Staff freeze or unfreeze (immediate both ways), with a reason; audited."""
    with committing():
        account = db.session.get(Account, account_id)
        if account is None:
            raise AccountNotFound("no such account")
        policy_service.freeze(db.session, account, by="staff", actor=f"staff:{g.staff_id}", frozen=body["frozen"],
                              now=utcnow(), loosen_delay=_delay(), notify=deps().cosigner.notify)
        return _out(account)


@admin.route("/spends/<spend_id>/approvals", methods=["POST"])
@staff_required
@admin.arguments(ApprovalInSchema)
@admin.response(200, SpendSchema)
def staff_approve(body, spend_id):
    """A staff approval (or denial) of a spend routed to staff by the account's policy."""
    with committing():
        return spends.approve(db.session, deps().cosigner, spend_id, kind="staff", approver=g.staff_id,
                              decision=body["decision"], note=body.get("note"), now=utcnow())


@admin.route("/spends", methods=["GET"])
@staff_required
@admin.response(200, SpendSchema(many=True))
def awaiting_staff():
    """Spends awaiting approval, oldest first."""
    return list(db.session.query(Spend).filter(Spend.state == "awaiting_approval").order_by(Spend.created_at))
