"""Spend use cases: build a PSBT through bitcoind, accept what the phone signed,
approvals, delayed release, approval expiry, cancel, fee bump (RBF).

Nothing here signs: every path that could lead to a cosigner signature (submit, approve,
release; a bump and the recovery sweep are submitted like any spend) ends in
`cosigner.gate.authorize_and_sign`, which decides with the policy in force at that
moment. Submitting the same signed PSBT twice returns the same result and broadcasts
once (row locks + digest).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from decimal import Decimal

from embit.script import Script
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import services as audit
from chain import wallets
from chain.rpc import sat_to_btc
from cosigner import accounts, gate, hooks, policy_service
from cosigner.context import CosignerContext
from cosigner.descriptors import network_params
from cosigner.errors import (FundingError, InvalidDescriptor, SpendNotFound, SpendStateError,
                             WatchOnly)
from cosigner.model import CANCELLABLE_STATES, OPEN_STATES, Account, Spend, SpendApproval
from cosigner.psbt import inspect, parse

DUST_SAT = 546
MAX_OUTPUTS = 100
MIN_FEE_RATE, MAX_FEE_RATE_REQUEST = 1.0, 10_000.0


def _check_outputs(outputs: list[dict], network: str) -> list[dict]:
    """Validate requested outputs; return bitcoind's [{address: BTC}] list."""
    if not outputs or len(outputs) > MAX_OUTPUTS:
        raise InvalidDescriptor(f"1 to {MAX_OUTPUTS} outputs", code="invalid_outputs")
    hrp = network_params(network)["bech32"]
    seen, result = set(), []
    for o in outputs:
        address, amount = o["address"], o["amount_sat"]
        try:
            Script.from_address(address)
        except Exception:
            raise InvalidDescriptor(f"{address!r} is not a valid address", code="invalid_address") from None
        low = address.lower()
        if low.startswith(("bc1", "tb1", "bcrt1")) and not low.startswith(hrp + "1"):
            raise InvalidDescriptor(f"{address!r} is not a {network} address", code="wrong_network")
        if address in seen:
            raise InvalidDescriptor("each address may appear once", code="duplicate_output")
        if amount < DUST_SAT:
            raise InvalidDescriptor(f"amount below the dust limit of {DUST_SAT} sat", code="dust_output")
        seen.add(address)
        result.append({address: sat_to_btc(amount)})
    return result


def create(session: Session, ctx: CosignerContext, account: Account, *, outputs: list[dict],
           fee_rate: float | None, conf_target: int | None, subtract_fee_from: list[int],
           replaceable: bool, now: dt.datetime) -> Spend:
    """Build a funded PSBT (bitcoind coin selection, change to our change descriptor),
    inspect it like any other PSBT, and record it with a policy preview."""
    if account.watch_only:
        raise WatchOnly("a watch-only account cannot spend")
    if fee_rate is not None and not MIN_FEE_RATE <= fee_rate <= MAX_FEE_RATE_REQUEST:
        raise InvalidDescriptor(f"fee_rate must be {MIN_FEE_RATE}..{MAX_FEE_RATE_REQUEST} sat/vB", code="invalid_fee_rate")
    if any(not 0 <= i < len(outputs) for i in subtract_fee_from):
        raise InvalidDescriptor("subtract_fee_from names an output that does not exist", code="invalid_outputs")
    rpc_outputs = _check_outputs(outputs, account.network)
    wallet = wallets.wallet_for(ctx.node, ctx.wallet_prefix, account.id)
    try:
        funded = wallets.fund_psbt(wallet, rpc_outputs, fee_rate=fee_rate, conf_target=conf_target,
                                   subtract_fee_from=subtract_fee_from, replaceable=replaceable)
    except Exception as err:
        code = getattr(err, "code", None)
        if code == -6 or "insufficient" in str(err).lower():
            raise FundingError("not enough confirmed funds for these outputs and fee") from None
        raise
    try:
        return record(session, ctx, account, funded["psbt"], now=now)
    except Exception:
        # bitcoind locked the selected coins for this build: give them back
        tx = parse(funded["psbt"]).tx
        wallet.call("lockunspent", True, [{"txid": v.txid.hex(), "vout": v.vout} for v in tx.vin])
        raise


def record(session: Session, ctx: CosignerContext, account: Account, psbt_b64: str, *, now: dt.datetime,
           replaces: Spend | None = None) -> Spend:
    """Inspect a PSBT built for `account` (by bitcoind or by another package, e.g. the
    recovery sweep) and record it as a `built` spend with its policy preview."""
    psbt = parse(psbt_b64)
    intent = inspect(psbt, accounts.view(account, session), caps=ctx.caps, require_platform_signature=False)
    decision = policy_service.decide(session, account, intent, spend_id=None, now=now, lock=False,
                                     sweep=hooks.is_sweep(session, account, intent))
    spend = Spend(id=f"spend_{secrets.token_hex(12)}", account_id=account.id, state="built", psbt=psbt_b64,
                  unsigned_txid=intent.txid, fee_sat=intent.fee_sat, fee_rate=intent.fee_rate, vsize=intent.vsize,
                  external_sat=intent.external_sat, inputs=[_input(i) for i in intent.inputs],
                  outputs=[_output(o) for o in intent.outputs], decision=decision.as_dict(),
                  replaces_id=replaces.id if replaces else None, created_at=now, updated_at=now)
    session.add(spend)
    session.flush()
    audit.record(session, actor=account.owner_device_id, action="spend.built", subject=spend.id,
                 details={"account": account.id, "fee_sat": intent.fee_sat, "external_sat": intent.external_sat,
                          "replaces": spend.replaces_id}, now=now)
    return spend


def _input(i) -> dict:
    return {"txid": i.txid, "vout": i.vout, "amount_sat": i.amount_sat, "branch": i.branch, "index": i.index}


def _output(o) -> dict:
    return {"index": o.index, "address": o.address, "amount_sat": o.amount_sat, "change": o.change,
            "change_index": o.change_index}


def get_owned(session: Session, spend_id: str, device_id: str, *, lock: bool = False) -> tuple[Spend, Account]:
    stmt = select(Spend).where(Spend.id == spend_id)
    if lock:
        stmt = stmt.with_for_update()
    spend = session.scalar(stmt) if isinstance(spend_id, str) and len(spend_id) <= 40 else None
    account = session.get(Account, spend.account_id) if spend else None
    if spend is None or account is None or account.owner_device_id != device_id:
        raise SpendNotFound("no such spend")
    return spend, account


def submit(session: Session, ctx: CosignerContext, spend_id: str, device_id: str, psbt_b64: str,
           now: dt.datetime) -> Spend:
    """Accept the phone-signed PSBT and hand it to the signing gate, which cosigns and
    broadcasts (`broadcast`), holds it (`delayed` / `awaiting_approval`), records the
    refusal (`denied`: the caller reports 422 after committing) or records bitcoind's
    refusal (`failed`). Idempotent for the same signed PSBT; raises PsbtRejected /
    SpendStateError / SpendNotFound with nothing changed."""
    digest = hashlib.sha256(psbt_b64.strip().encode()).hexdigest()
    spend, account = gate.lock_spend(session, spend_id)
    if account is None or account.owner_device_id != device_id:
        raise SpendNotFound("no such spend")
    if spend.submitted_digest == digest and spend.state not in OPEN_STATES:
        return spend
    if spend.state not in OPEN_STATES:
        raise SpendStateError(f"spend is {spend.state}", code="spend_not_open")
    spend.submitted_digest, spend.updated_at = digest, now
    return gate.authorize_and_sign(session, ctx, spend, account, psbt_b64=psbt_b64, actor=device_id, now=now)


def release(session: Session, ctx: CosignerContext, spend_id: str, now: dt.datetime) -> Spend | None:
    """Job body: a delayed spend whose time has come goes back through the signing gate,
    which re-decides with the policy of now (a tightening may hold it again, ask for
    approvals or deny it) and checks its inputs are still unspent. Runs once even with
    two workers (locks + state check). Returns None when there was nothing to do."""
    try:
        spend, account = gate.lock_spend(session, spend_id)
    except SpendNotFound:
        return None
    if spend.state != "delayed" or (spend.release_at and spend.release_at > now):
        return None
    return gate.authorize_and_sign(session, ctx, spend, account, psbt_b64=spend.signed_psbt, actor="system",
                                   now=now, check_inputs=True)


def approve(session: Session, ctx: CosignerContext, spend_id: str, *, kind: str, approver: str, decision: str,
            note: str | None, now: dt.datetime) -> Spend:
    """Record an approval (or a denial) by an eligible device or staff member. One
    denial ends the spend; an approval hands it to the signing gate, which signs only
    when the policy of now approves and enough valid approvals are in. An approval that
    arrives after the deadline expires the spend (state `expired`; the caller reports
    409 `approval_expired` after committing), whether or not the expiry job ran."""
    spend, account = gate.lock_spend(session, spend_id)
    rules = policy_service.current(session, account.id).approvals
    eligible = rules is not None and ((kind == "staff" and rules.staff) or
                                      (kind == "device" and approver in rules.devices
                                       and approver != account.owner_device_id))
    if not eligible:
        raise SpendNotFound("no such spend awaiting your approval") if kind == "device" else \
            SpendStateError("staff may not approve this account's spends", code="not_an_approver")
    if spend.state == "expired":
        raise SpendStateError("the approval deadline has passed", code="approval_expired")
    if spend.state != "awaiting_approval":
        raise SpendStateError(f"spend is {spend.state}", code="not_awaiting_approval")
    if spend.approval_expires_at is not None and now > spend.approval_expires_at:
        _expire(session, ctx, account, spend, now)
        return spend
    if session.scalar(select(SpendApproval).where(SpendApproval.spend_id == spend.id,
                                                  SpendApproval.approver_kind == kind,
                                                  SpendApproval.approver_id == approver)):
        raise SpendStateError("you already decided on this spend", code="already_decided")
    session.add(SpendApproval(spend_id=spend.id, approver_kind=kind, approver_id=approver, decision=decision,
                              note=note, created_at=now))
    session.flush()
    audit.record(session, actor=f"{kind}:{approver}", action=f"spend.{decision}d", subject=spend.id,
                 details={"note_given": bool(note)}, now=now)
    if decision == "deny":
        spend.state, spend.updated_at, spend.signed_psbt = "denied", now, None
        gate.unlock_coins(ctx, account, spend)
        ctx.notify(session, account.owner_device_id, "spend_denied", now)
        return spend
    return gate.authorize_and_sign(session, ctx, spend, account, psbt_b64=spend.signed_psbt,
                                   actor=f"{kind}:{approver}", now=now, check_inputs=True)


def approvals_of(session: Session, spend_id: str) -> list[SpendApproval]:
    return list(session.scalars(select(SpendApproval).where(SpendApproval.spend_id == spend_id)
                                .order_by(SpendApproval.created_at)))


def expire_approval(session: Session, ctx: CosignerContext, spend_id: str, now: dt.datetime) -> bool:
    """Job body: an approval request past its deadline expires. Idempotent."""
    try:
        spend, account = gate.lock_spend(session, spend_id)
    except SpendNotFound:
        return False
    if spend.state != "awaiting_approval" or spend.approval_expires_at > now:
        return False
    _expire(session, ctx, account, spend, now)
    return True


def _expire(session: Session, ctx: CosignerContext, account: Account, spend: Spend, now: dt.datetime) -> None:
    spend.state, spend.updated_at, spend.signed_psbt = "expired", now, None
    gate.unlock_coins(ctx, account, spend)
    audit.record(session, actor="system", action="spend.approval_expired", subject=spend.id, details={}, now=now)
    ctx.notify(session, account.owner_device_id, "approval_expired", now)


def cancel(session: Session, ctx: CosignerContext, spend_id: str, device_id: str, now: dt.datetime) -> Spend:
    """Cancel a spend that was not broadcast (built, delayed or awaiting approval).
    Idempotent for an already cancelled spend."""
    spend, account = get_owned(session, spend_id, device_id, lock=True)
    if spend.state == "cancelled":
        return spend
    if spend.state not in CANCELLABLE_STATES:
        raise SpendStateError(f"a {spend.state} spend cannot be cancelled", code="spend_not_open")
    spend.state, spend.updated_at, spend.signed_psbt = "cancelled", now, None
    gate.unlock_coins(ctx, account, spend)
    audit.record(session, actor=device_id, action="spend.cancelled", subject=spend.id, details={}, now=now)
    return spend


def bump(session: Session, ctx: CosignerContext, spend_id: str, device_id: str, fee_rate: float,
         now: dt.datetime) -> Spend:
    """A replacement PSBT (psbtbumpfee) paying `fee_rate` sat/vB, recorded as a new spend
    that replaces this one once broadcast; it goes through the same signature path."""
    spend, account = get_owned(session, spend_id, device_id)
    if spend.state != "broadcast" or not spend.txid:
        raise SpendStateError("only a broadcast, unconfirmed spend can be bumped", code="spend_not_bumpable")
    if not MIN_FEE_RATE <= fee_rate <= MAX_FEE_RATE_REQUEST:
        raise InvalidDescriptor(f"fee_rate must be {MIN_FEE_RATE}..{MAX_FEE_RATE_REQUEST} sat/vB", code="invalid_fee_rate")
    wallet = wallets.wallet_for(ctx.node, ctx.wallet_prefix, account.id)
    result = wallet.call("psbtbumpfee", spend.txid, {"fee_rate": Decimal(str(fee_rate))})
    return record(session, ctx, account, result["psbt"], now=now, replaces=spend)
