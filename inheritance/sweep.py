"""The inheritance sweep: the one spend a proven, released claim allows — every coin
of the account to a receive address of an account the beneficiary's device owns, built
by the server, signed by the recovery key, cosigned only through the signing gate
(cosigner.gate.authorize_and_sign) under the `inheritance_sweep` rule.

Importing this module registers its cosigner hooks (app/inheritance_api.py and
workers/inheritance_tasks.py do). While a claim of the account is released and proven
the account is in inheritance-sweep mode:
- the spend's second signature must be the recovery key's (signer role);
- nothing else is built (`inheritance_sweep_mode`) and nothing but the built sweep is
  signed; the guard re-proves, under the account lock at signing time, that the claim
  is still released and proven, the account still has the owner the claim started
  with, and each output re-derives from the destination account's receive descriptor
  at an issued index, that account still owned by the beneficiary's device (the
  server's own script table; never the client's word);
- the `inheritance_sweep` rule decides (inheritance.rule): an owner or staff freeze
  denies the sweep.
After the broadcast (`finish`) the claim is completed, the emptied account passes to
the beneficiary's device and the old owner's device is revoked for it — not before.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from types import SimpleNamespace

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from audit import services as audit
from cosigner import accounts, hooks
from cosigner import policy_service
from cosigner.errors import AccountNotFound, PsbtRejected, SpendStateError
from cosigner.model import OPEN_STATES, Account, Spend
from inheritance import rule
from inheritance.claims import get_for_beneficiary
from inheritance.errors import ClaimClosed, InheritanceSweepError
from inheritance.model import InheritanceClaim
from recovery.sweep import destination_owned as _recovery_destination_owned, sweep_every_coin


def sweeping(session: Session, account_id: str) -> InheritanceClaim | None:
    """The account's released, proven claim (inheritance-sweep mode), or None (one query
    per gate decision: cosigner.hooks.memoized)."""
    return hooks.memoized(session, ("inheritance.sweeping", account_id),
                          lambda: session.scalar(_SWEEPING, {"account": account_id}))


_SWEEPING = (select(InheritanceClaim)       # built once: every gate decision asks
             .where(InheritanceClaim.account_id == bindparam("account"), InheritanceClaim.state == "released",
                    InheritanceClaim.proven_at.is_not(None))
             .order_by(InheritanceClaim.proven_at).limit(1))


def destination_owned(session: Session, claim: InheritanceClaim, script_hex: str, network: str) -> bool:
    """Whether `script_hex` re-derives from the claim's destination account (issued
    receive index), and that account is owned by the beneficiary's device now."""
    view = SimpleNamespace(destination_account_id=claim.destination_account_id,
                           new_owner_device_id=claim.beneficiary_device_id, account_id=claim.account_id)
    return _recovery_destination_owned(session, view, script_hex, network)


def claim_ok(session: Session, account: Account, claim: InheritanceClaim | None) -> bool:
    """The state of now: released, proven, not expired, the account's owner unchanged."""
    return (claim is not None and claim.state == "released" and claim.proven_at is not None
            and account.owner_device_id == claim.owner_device_id)


@hooks.register_signer_role
def _signer_role(session, account) -> str | None:
    return "recovery" if sweeping(session, account.id) else None


@hooks.register_build_guard
def _no_normal_build(session, account) -> None:
    if sweeping(session, account.id) is not None:
        raise SpendStateError("this account is in inheritance-sweep mode: the owner can cancel the claim "
                              "(DELETE /v1/inheritance/claims/{id}) to spend again", code="inheritance_sweep_mode")


@hooks.register_submit_guard
def _sweep_only(session, account, intent, now) -> None:
    claim = sweeping(session, account.id)
    if claim is None:
        return
    if claim.sweep_txid is None or intent.txid != claim.sweep_txid:
        raise PsbtRejected("this account is in inheritance-sweep mode: only the sweep built by "
                           "POST /v1/inheritance/claims/{id}/sweep can be signed", code="inheritance_sweep_only")
    if not claim_ok(session, account, claim):
        raise PsbtRejected("the inheritance claim no longer allows a sweep", code="claim_not_released")
    for out in intent.outputs:
        if out.change or not destination_owned(session, claim, out.script_hex, account.network):
            raise PsbtRejected("a sweep output is not an address of the beneficiary's account",
                               code="sweep_destination_not_owned")


@hooks.register_policy_rule
def _inheritance_rule(session, account, intent, now):
    claim = sweeping(session, account.id)
    if claim is None or claim.sweep_txid is None or intent.txid != claim.sweep_txid:
        return None
    return rule.evaluate(policy_service.intent_of(intent), policy_service.current(session, account.id),
                         claim_ok=claim_ok(session, account, claim))


def _refuse_if_frozen(session: Session, account: Account) -> None:
    policy = policy_service.current(session, account.id)
    if policy.frozen or policy.staff_frozen:
        raise InheritanceSweepError("the account is frozen: the sweep is refused", code="account_frozen",
                                    details={"by": "staff" if policy.staff_frozen else "owner"})


def _claim_for_sweep(session: Session, claim_id, device_id: str) -> tuple[InheritanceClaim, Account]:
    claim = get_for_beneficiary(session, claim_id, device_id, lock=True)
    if claim.state in ("cancelled", "expired", "completed"):
        raise ClaimClosed(f"this inheritance claim is {claim.state}", details={"state": claim.state})
    account = session.get(Account, claim.account_id)
    if not claim_ok(session, account, claim):
        raise InheritanceSweepError("prove the recovery key first (POST /v1/inheritance/claims/{id}/complete)",
                                    code="claim_not_proven")
    return claim, account


def build(session: Session, cctx, claim_id, device_id: str, destination_account_id, *, fee_rate: float | None,
          now: dt.datetime) -> Spend:
    """Build and record the sweep: EVERY confirmed coin of the account in the chain
    index (the owner's open spends are cancelled here, in the same transaction, so their
    coins are included) to a fresh receive address of `destination_account_id`, fee
    subtracted, no change. Rebuilding replaces an earlier sweep that did not go out.
    Raises ClaimNotFound / ClaimClosed, InheritanceSweepError (`claim_not_proven`,
    `account_frozen`, `sweep_destination_not_owned`), recovery.errors.SweepError (the
    shared sweep build: `invalid_fee_rate`, `unconfirmed_funds`, `nothing_to_sweep`,
    `sweep_incomplete`; 422 like the others). Returns the Spend."""
    claim, account = _claim_for_sweep(session, claim_id, device_id)
    policy_service.lock_account(session, account.id)
    _refuse_if_frozen(session, account)
    try:
        dest = accounts.get_owned(session, destination_account_id, device_id)
    except AccountNotFound:
        raise InheritanceSweepError("the destination must be an account owned by this device",
                                    code="sweep_destination_not_owned") from None
    if dest.id == account.id or dest.watch_only or dest.network != account.network or sweeping(session, dest.id):
        raise InheritanceSweepError("the destination must be another spendable account of this device",
                                    code="sweep_destination_not_owned")
    claim.destination_account_id = dest.id

    def _mark(txid: str) -> None:        # before the spend is recorded: its preview is the inheritance rule's
        claim.sweep_txid = txid
    spend, unspent, _ = sweep_every_coin(session, cctx, account, dest, fee_rate=fee_rate, actor=device_id,
                                         by="inheritance_sweep", now=now, on_built=_mark)
    total = sum(c.amount_sat for c in unspent)
    claim.sweep_spend_id, claim.sweep_txid, claim.updated_at = spend.id, spend.unsigned_txid, now
    audit.record(session, actor=device_id, action="inheritance.sweep_built", subject=claim.id,
                 details={"account": account.id, "spend": spend.id, "destination": dest.id, "inputs": len(unspent),
                          "total_sat": total}, now=now)
    return spend


def submit(session: Session, cctx, claim_id, device_id: str, psbt_b64: str, now: dt.datetime) -> Spend:
    """The recovery-key-signed sweep goes to the signing gate, which re-decides with the
    state of now (guards and the `inheritance_sweep` rule above) and cosigns and
    broadcasts, or records the refusal (`denied`; the caller reports it after
    committing). On broadcast: `finish`. Idempotent for the same signed PSBT. Raises
    ClaimNotFound / ClaimClosed / InheritanceSweepError / SpendStateError / PsbtRejected
    with nothing changed."""
    from cosigner import gate, reservations
    claim = get_for_beneficiary(session, claim_id, device_id, lock=True)
    if claim.state == "completed" and claim.sweep_spend_id:
        spend = session.get(Spend, claim.sweep_spend_id)
        if spend.submitted_digest == hashlib.sha256(psbt_b64.strip().encode()).hexdigest():
            return spend
    claim, account = _claim_for_sweep(session, claim_id, device_id)
    if not claim.sweep_spend_id:
        raise InheritanceSweepError("build the sweep first (POST /v1/inheritance/claims/{id}/sweep)",
                                    code="sweep_not_built")
    spend, account = gate.lock_spend(session, claim.sweep_spend_id)
    if spend.state not in OPEN_STATES:
        raise SpendStateError(f"spend is {spend.state}", code="spend_not_open")
    reservations.keep(session, spend, now, cctx.reservation_ttl, strict=True)
    spend.submitted_digest = hashlib.sha256(psbt_b64.strip().encode()).hexdigest()
    spend.updated_at = now
    spend = gate.authorize_and_sign(session, cctx, spend, account, psbt_b64=psbt_b64, actor=device_id, now=now)
    if spend.state == "broadcast":
        finish(session, claim, account, spend, now)
    return spend


def finish(session: Session, claim: InheritanceClaim, account: Account, spend: Spend, now: dt.datetime) -> None:
    """After the broadcast: released → completed; the emptied account passes to the
    beneficiary's device, and the old owner's device is revoked for it (the device
    itself is revoked when it owns no other account). Other open claims of the account
    are cancelled (`superseded`) and the plan names nobody any more."""
    from devices import services as devices
    from devices.model import Device
    from inheritance.claims import move, open_claims
    move(session, claim, "completed", now, by=claim.beneficiary_device_id, txid=spend.txid)
    old_owner = account.owner_device_id
    account.owner_device_id = claim.beneficiary_device_id
    audit.record(session, actor=claim.beneficiary_device_id, action="inheritance.owner_changed", subject=account.id,
                 details={"claim": claim.id, "from": old_owner, "to": claim.beneficiary_device_id,
                          "txid": spend.txid}, now=now)
    others = session.scalar(select(Account.id).where(Account.owner_device_id == old_owner).limit(1))
    device = session.get(Device, old_owner)
    if others is None and device is not None and not device.revoked:
        devices.revoke(session, old_owner, now=now, actor=f"inheritance:{claim.id}")
    for other in open_claims(session, account.id):
        if other.id != claim.id:
            move(session, other, "cancelled", now, reason="superseded")
    from inheritance.plans import get as plan_of
    plan = plan_of(session, account.id, lock=True)
    if plan is not None:                       # the account is the beneficiary's now: nobody is left to inherit it
        plan.beneficiaries, plan.version, plan.updated_at = [], plan.version + 1, now
