"""/v1/accounts/{id}/policy: versioned rules, pending loosening changes, panic freeze.
(The staff side — freeze/unfreeze, approvals — is in app/admin_api.py.)"""
from __future__ import annotations

import datetime as dt

from flask import g
from flask_smorest import Blueprint

from app.auth.device import signed
from app.cosigner_schemas import FreezeSchema, PolicyChangeSchema, PolicyOutSchema, PolicyRulesSchema
from app import fiat
from app.deps import deps
from app.openapi_errors import errors
from app.extensions import db
from app.transaction import committing
from cosigner import accounts, policy_service
from store.base import utcnow

bp = Blueprint("policy", __name__, url_prefix="/v1", description="Spending policy")
# Staff freeze/unfreeze and staff approvals moved to app/admin_api.py (/v1/admin, roles + tokens).


def _delay() -> dt.timedelta:
    return dt.timedelta(seconds=deps().settings.policy_loosen_delay)


def _check_currencies(rules: dict) -> None:
    """Fiat rules may name only the currencies Custos prices: a rule in a currency without
    a price would refuse every spend."""
    named = {x["currency"] for x in rules.get("limits") or [] if "currency" in x}
    named |= {rules["max_per_tx"]["currency"]} if rules.get("max_per_tx") else set()
    named |= {rules["verify"]["above"]["currency"]} if (rules.get("verify") or {}).get("above") else set()
    if named:
        fiat.check_priced(named, need_source=True)


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
@errors({409: "A `verify` rule names a channel the account has not confirmed. `error.code`: "
              "verification_channel_missing."})
@signed
@bp.arguments(PolicyRulesSchema)
@bp.response(200, PolicyOutSchema)
def put_policy(rules, account_id):
    """Replace the rules. What tightens applies at once; what loosens (a relaxed rule, a
    new allowlist entry or approver, a lifted freeze) becomes a pending change effective
    after the loosening delay, announced to the owner and cancellable. `max_per_tx` and
    `limits` may be in fiat (`{"max": "500.00", "currency": "USD"}`): converted with the
    validated price at the moment of signing; no fresh price → refused (`price_unavailable`)."""
    _check_currencies(rules)
    with committing():
        account = accounts.get_owned(db.session, account_id, g.device.id)
        if rules.get("verify"):
            from verification.channels import require_usable
            require_usable(db.session, account.id, rules["verify"]["channel"])
        _, change = policy_service.set_rules(db.session, account, rules, actor=g.device.id, now=utcnow(),
                                             loosen_delay=_delay(), notify=deps().cosigner.notify,
                                             ctx=deps().cosigner)
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
                                          now=utcnow(), loosen_delay=_delay(), notify=deps().cosigner.notify,
                                          ctx=deps().cosigner)
        return _out(account, change)
