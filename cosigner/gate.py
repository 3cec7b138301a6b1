"""The signing gate: the one place where the cosigner key signs.

Every path that can produce a cosigner signature — the phone's submit, an approval by a
device or staff, a delayed release, a fee bump and the recovery sweep (both submitted
like any spend) — calls `authorize_and_sign()`. Under the account's row lock it
re-inspects the held PSBT, runs the full policy decision with the policy, freeze state
and velocity ledger *in force now*, and signs only when that decision approves and every
condition the spend was held for is met now:

- approvals: enough approvals from approvers the *current* policy names, each given
  before the approval deadline, and the deadline itself not passed;
- verification: when the *current* policy's `verify` rule fires, a confirmation on the
  channel it names now was given out of band (verification.satisfied); a spend waiting
  for it is `awaiting_verification` (coins reserved) and `confirm_verified()` brings it
  back here when the owner confirms; a freeze or tightening meanwhile wins;
- delay: the *current* policy's delay counted from when the phone's signature was first
  accepted (`spend.decided_at`) has elapsed.

Anything else moves the spend to the state the decision names (denied, awaiting
approval, delayed until a new time) and tells the owner. `review_held()` re-decides the
held spends of an account without signing, after a tightening or a freeze, so the owner
sees at once which ones will not go out.

`_cosign()` is private to this module; tests/unit/test_signing_gate_static.py fails if
any other module signs a PSBT with a cosigner key or calls it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from embit.bip32 import HDKey
from embit.descriptor.arguments import Key as DescriptorKey, KeyOrigin
from embit.transaction import SIGHASH
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from audit import services as audit
from chain import rpc
from chain.errors import ChainRejected
from cosigner import chainevents, gate_prepare, hooks, policy_service, reservations
from cosigner import policy as engine
from cosigner.context import CosignerContext
from cosigner.errors import PsbtRejected, SpendNotFound
from cosigner.finalize import finalize
from cosigner.model import HELD_STATES, Account, CosignerKey, Spend, SpendApproval
from cosigner.gate_prepare import Prepared
from cosigner.psbt import HARDENED, Intent, derive_private
from cosigner.vault import SealedSecret, open_secret
from devices.model import Device
from verification import channels as vchannels
from verification import privileged
from verification import services as verification
from workers.jobs import schedule

APPROVAL_TTL = dt.timedelta(hours=24)
# read afresh under the account's lock (built once: every decision runs it)
_LOCK_SPEND = (select(Spend).where(Spend.id == bindparam("spend")).with_for_update()
               .execution_options(populate_existing=True))


@dataclass(frozen=True)
class Verdict:
    """What the gate concluded: `sign`, `deny`, `await_approval`, `await_verification`,
    `delay` (until) or `expired` (the approval deadline passed)."""
    action: str
    decision: engine.Decision
    until: dt.datetime | None = None


def lock_spend(session: Session, spend_id: str, *, account_id: str | None = None) -> tuple[Spend, Account]:
    """Lock the account row, then the spend row (always in this order, like policy
    changes, so concurrent paths cannot deadlock); both are read afresh under the locks.
    `account_id`: the spend's, when the caller read it already (it never changes).
    Raises SpendNotFound."""
    if not isinstance(spend_id, str) or len(spend_id) > 40:
        raise SpendNotFound("no such spend")
    if account_id is None:
        account_id = session.scalar(select(Spend.account_id).where(Spend.id == spend_id))
    if account_id is None:
        raise SpendNotFound("no such spend")
    account = policy_service.lock_account(session, account_id)
    spend = session.scalar(_LOCK_SPEND, {"spend": spend_id})
    if spend is None or account is None:
        raise SpendNotFound("no such spend")
    return spend, account


def prepare(session: Session, ctx: CosignerContext, spend: Spend, account: Account,
            psbt_b64: str) -> Prepared | None:
    """The inspection of a submitted PSBT done before the locks (cosigner.gate_prepare:
    what it may use and what is re-checked under the lock); None when it refuses (the
    refusal is decided under the lock). Writes nothing, signs nothing."""
    return gate_prepare.prepare(session, ctx, spend, account, psbt_b64)


def valid_approvals(session: Session, spend: Spend, account: Account, rules: engine.Approvals | None) -> int:
    """Approvals that count now: given before the deadline by an approver the current
    policy names, by a device not revoked since (a compromised approver's earlier yes goes
    with it); the owner's own device never counts."""
    if rules is None:
        return 0
    rows = list(session.scalars(select(SpendApproval).where(SpendApproval.spend_id == spend.id,
                                                            SpendApproval.decision == "approve")))
    deadline = spend.approval_expires_at
    named = {r.approver_id for r in rows if r.approver_kind == "device" and r.approver_id in rules.devices
             and r.approver_id != account.owner_device_id}
    active = set(session.scalars(select(Device.id).where(Device.id.in_(named), Device.revoked_at.is_(None)))) \
        if named else set()
    return sum(1 for r in rows
               if (deadline is None or r.created_at <= deadline)
               and ((r.approver_kind == "staff" and rules.staff)
                    or (r.approver_kind == "device" and r.approver_id in active)))


def judge(session: Session, account: Account, spend: Spend, decision: engine.Decision,
          now: dt.datetime) -> Verdict:
    """Combine the decision of now with what the spend already has (approvals, time held)."""
    if decision.action == "deny":
        return Verdict("deny", decision)
    if decision.action == "require_approval":
        if spend.state == "awaiting_approval" and spend.approval_expires_at and now > spend.approval_expires_at:
            return Verdict("expired", decision)
        rules = policy_service.current(session, account.id).approvals
        if valid_approvals(session, spend, account, rules) < rules.required:
            return Verdict("await_approval", decision)
    if decision.verify and not verification.satisfied(session, "spend", spend.id, decision.verify):
        if not vchannels.has_usable(session, account.id, decision.verify):   # fail closed
            return Verdict("deny", replace(decision, action="deny", reasons=decision.reasons + (
                {"rule": "verification_channel_missing", "channel": decision.verify},)))
        return Verdict("await_verification", decision)
    if decision.release_at is not None:
        delay = decision.release_at - now
        due = (spend.decided_at or now) + delay
        if due > now:
            return Verdict("delay", decision, until=due)
    return Verdict("sign", decision)


def authorize_and_sign(session: Session, ctx: CosignerContext, spend: Spend, account: Account, *,
                       psbt_b64: str, actor: str, now: dt.datetime, check_inputs: bool = False,
                       prepared: Prepared | None = None) -> Spend:
    """The only way to a cosigner signature. The caller holds the locks (`lock_spend`).

    Re-inspects `psbt_b64` (the phone-signed PSBT) against the account's descriptors,
    runs the sweep-mode guards and the policy in force at `now`, and then either signs,
    finalizes and broadcasts (state `broadcast`) or moves the spend to `denied`,
    `awaiting_approval`, `delayed` (a new `release_at`) or `expired`. A broadcast that
    bitcoind refuses leaves the spend `failed` with bitcoind's reason in `error`; the
    caller reports it. Raises PsbtRejected when inspection refuses (nothing changes).
    `prepared`: the inspection `prepare()` did before the locks, used only when it
    `fits` the spend, account, PSBT, signer role and replaced txid read now, and only by
    a caller that re-reserved the spend's inputs strictly under the lock (submit);
    otherwise the PSBT is inspected here. Returns the spend."""
    replaced = session.get(Spend, spend.replaces_id) if spend.replaces_id else None
    # the sweep-mode lookups: one query each for this decision; no autoflush while deciding
    # (nothing read here depends on this spend's unflushed changes: its own row is never
    # read and the ledger excludes it), so the spend's row is written once, with its outcome
    with hooks.memo(session), session.no_autoflush:
        role = hooks.signer_role(session, account)
        if prepared is not None and prepared.fits(spend, account, psbt_b64, role, replaced.txid if replaced else None):
            psbt, view, intent, key = prepared.psbt, prepared.view, prepared.intent, prepared.key
        else:                        # amounts and scripts are the index's; spentness below
            psbt, view, intent, key = gate_prepare.inspected(session, ctx, spend, account, psbt_b64, role, replaced)
        hooks.check_submit(session, account, intent, now)
        decision = hooks.policy_rule(session, account, intent, now) or policy_service.decide(
            session, account, intent, spend_id=spend.id, now=now, lock=False,
            sweep=hooks.is_sweep(session, account, intent))
    verdict = judge(session, account, spend, decision, now)
    if verdict.action != "sign":
        record_decision(session, spend, decision, actor=actor, now=now)
        _hold(session, ctx, account, spend, verdict, psbt_b64=psbt_b64, now=now)
        return spend
    # a signed spend's decision is audited once, with what became of it (below)
    if check_inputs:
        for i in spend.inputs:  # a replacement's inputs are spent by the mempool transaction it replaces
            if ctx.node.call("gettxout", i["txid"], i["vout"], replaced is None) is None:
                record_decision(session, spend, decision, actor=actor, now=now)
                return _fail(session, ctx, account, spend, "inputs_spent", now)
    raw = _cosign(ctx, key, view, psbt, intent)
    try:
        txid = rpc.broadcast(ctx.node, raw.hex())
    except ChainRejected as err:
        record_decision(session, spend, decision, actor=actor, now=now)
        return _fail(session, ctx, account, spend, err.message[:200], now)
    spend.state, spend.txid, spend.broadcast_at, spend.updated_at = "broadcast", txid, now, now
    spend.decided_at = now           # counts against velocity windows from the moment it was signed
    spend.signed_psbt = None
    chainevents.index_own_broadcast(session, ctx.notify, raw, txid, now, account_id=account.id,
                                    intent=None if spend.replaces_id else intent)
    reservations.keep(session, spend, now, ctx.reservation_ttl, strict=False)
    if spend.replaces_id:
        old = session.get(Spend, spend.replaces_id)
        if old is not None:
            old.state, old.replaced_by_id, old.updated_at = "replaced", spend.id, now
    # last, so PostgreSQL's audit-tail lock is held only from here to commit
    record_decision(session, spend, decision, actor=actor, now=now,
                    outcome={"txid": txid, "fee_sat": intent.fee_sat})
    return spend


def review_held(session: Session, account: Account, *, notify, now: dt.datetime, actor: str) -> list[Spend]:
    """Re-decide every held spend of `account` with the policy in force now, without
    signing: a spend the policy now refuses is denied, one that now needs approvals waits
    for them, one whose delay grew waits longer. A spend that would be signable stays as
    it is (its release or approval signs it through the gate); so does one that only a
    missing price would refuse. The caller holds the account lock. Returns the spends
    whose state or time changed."""
    changed = []
    for spend in session.scalars(select(Spend).where(Spend.account_id == account.id, Spend.state.in_(HELD_STATES))
                                 .with_for_update()):
        intent = _stored_intent(spend, sweep=hooks.is_sweep(session, account, _TxidOnly(spend.unsigned_txid)))
        policy = policy_service.current(session, account.id)
        history = policy_service.ledger(session, account.id, exclude=spend.id)
        decision = engine.evaluate(intent, policy, history, now, rates=policy_service.rates(session, policy, now))
        if decision.action == "deny" and any(r.get("rule") == "price_unavailable" for r in decision.reasons):
            # no price right now is no verdict on a held spend: its fiat rules are decided,
            # with the price of that moment, when it would be signed
            decision = engine.evaluate(intent, engine.without_fiat(policy), history, now)
        verdict = judge(session, account, spend, decision, now)
        if verdict.action == "sign" or (verdict.action == "delay" and spend.state == "delayed"
                                        and spend.release_at and verdict.until <= spend.release_at):
            continue
        if verdict.action == "await_approval" and spend.state == "awaiting_approval":
            continue
        if verdict.action == "await_verification":
            continue   # asked for (mail, links) by the gate when it would sign, with the full context
        record_decision(session, spend, decision, actor=actor, now=now)
        _hold(session, _NotifyOnly(notify, _reservation_margin(spend, now)), account, spend, verdict,
              psbt_b64=spend.signed_psbt, now=now)
        changed.append(spend)
    return changed


def confirm_verified(session: Session, ctx: CosignerContext, spend_id: str, *, via: str, now: dt.datetime) -> Spend:
    """The owner confirmed a spend out of band: under the locks, a spend still
    `awaiting_verification` goes back through `authorize_and_sign`, which re-decides with
    the policy, freeze and ledger of now (it may sign, delay, deny). Any other state is
    left alone. Returns the spend."""
    spend, account = lock_spend(session, spend_id)
    if spend.state != "awaiting_verification":
        return spend
    return authorize_and_sign(session, ctx, spend, account, psbt_b64=spend.signed_psbt, actor=f"verification:{via}",
                              now=now, check_inputs=True)


def cancel_unverified(session: Session, ctx, spend_id: str, *, reason: str, now: dt.datetime) -> Spend | None:
    """The out-of-band verification was cancelled (link, wrong codes) or expired: a spend
    still waiting for it is cancelled and its coins freed. Idempotent."""
    try:
        spend, account = lock_spend(session, spend_id)
    except SpendNotFound:
        return None
    if spend.state == "awaiting_verification":
        spend.state, spend.updated_at, spend.signed_psbt, spend.release_at = "cancelled", now, None, None
        unlock_coins(session, spend)
        audit.record(session, actor="verification", action="spend.cancelled", subject=spend.id,
                     details={"reason": reason}, now=now)
        ctx.notify(session, account.owner_device_id, "spend_cancelled", now)
    return spend


def record_decision(session: Session, spend: Spend, decision: engine.Decision, *, actor: str,
                    now: dt.datetime, outcome: dict | None = None) -> None:
    """Store the decision on the spend and append its one `spend.decision` audit row.
    `outcome` (the broadcast's txid and fee) joins the row of a decision that signed, so
    a cosign costs one audit row and the trail still names the transaction."""
    spend.decision = decision.as_dict()
    details = {"action": decision.action, "policy_version": decision.policy_version,
               "reasons": [r.get("rule") for r in decision.reasons], **(outcome or {})}
    if decision.rates:               # the prices fiat rules converted with, at this moment
        details["rates"] = dict(decision.rates)
    audit.record(session, actor=actor, action="spend.decision", subject=spend.id, details=details, now=now)


def unlock_coins(session: Session, spend: Spend) -> None:
    """Free the coins this spend reserved (same transaction as its state change)."""
    reservations.free(session, spend)


# -- internals ----------------------------------------------------------------------------------
class _TxidOnly:
    def __init__(self, txid: str):
        self.txid = txid


class _NotifyOnly:
    """The part of a CosignerContext that holding a spend needs. A review has no chain and
    no settings: a held spend keeps the reservation margin it was given (SPEND_RESERVATION_TTL
    past its deadline, when the gate last held it)."""

    def __init__(self, notify, reservation_ttl: int):
        self.notify = notify
        self.reservation_ttl = reservation_ttl


def _reservation_margin(spend: Spend, now: dt.datetime) -> int:
    """Seconds the spend's coins are reserved past the deadline it waits for (the
    configured TTL when the gate held it); the default when it has none to go by."""
    deadline = max([d for d in (spend.release_at, spend.approval_expires_at) if d is not None] + [now])
    if spend.reserved_until is None or spend.reserved_until <= deadline:
        return reservations.DEFAULT_TTL
    return int((spend.reserved_until - deadline).total_seconds())


def _stored_intent(spend: Spend, sweep: bool) -> engine.Intent:
    """The policy intent of a held spend from what inspection recorded at submit."""
    return engine.Intent(tuple((o["address"], o["amount_sat"]) for o in spend.outputs if not o["change"]),
                         spend.fee_sat, spend.fee_rate, frozenset(f"{i['txid']}:{i['vout']}" for i in spend.inputs),
                         sweep)


def _hold(session: Session, ctx, account: Account, spend: Spend, verdict: Verdict, *, psbt_b64: str,
          now: dt.datetime) -> None:
    """Move a spend the gate did not sign to the state its verdict names; notify. A held
    spend keeps its coins reserved past the deadline it waits for; a refused one frees them."""
    _move(session, ctx, account, spend, verdict, psbt_b64=psbt_b64, now=now)
    if spend.state in HELD_STATES:
        reservations.keep(session, spend, now, ctx.reservation_ttl, strict=False)


def _move(session: Session, ctx, account: Account, spend: Spend, verdict: Verdict, *, psbt_b64: str,
          now: dt.datetime) -> None:
    spend.updated_at = now
    if spend.state == "awaiting_verification" and verdict.action != "await_verification":
        verification.withdraw(session, "spend", spend.id, now, reason=verdict.action)   # its links die
    if verdict.action in ("deny", "expired"):
        held = spend.state in HELD_STATES
        spend.state = "denied" if verdict.action == "deny" else "expired"
        spend.signed_psbt, spend.release_at = None, None
        unlock_coins(session, spend)
        if held:
            ctx.notify(session, account.owner_device_id,
                       "spend_denied" if verdict.action == "deny" else "approval_expired", now)
        return
    if spend.decided_at is None:
        spend.decided_at = now       # from here the amount counts against velocity limits
    spend.signed_psbt = psbt_b64.strip()
    if verdict.action == "await_approval":
        if spend.state != "awaiting_approval":
            spend.state = "awaiting_approval"
            spend.approval_expires_at = now + APPROVAL_TTL
            schedule(session, "spend.approval_expiry", spend.id, spend.approval_expires_at)
            rules = policy_service.current(session, account.id).approvals
            for approver in (rules.devices if rules else ()):
                ctx.notify(session, approver, "approval_request", now)
            ctx.notify(session, account.owner_device_id, "spend_awaiting_approval", now)
        spend.release_at = verdict.decision.release_at and (spend.decided_at + (verdict.decision.release_at - now))
        return
    if verdict.action == "await_verification":
        if spend.state != "awaiting_verification":
            spend.state = "awaiting_verification"
            assert privileged.rule("spend.verify").oob
            verification.require(session, account, "spend.verify", "spend", spend.id, _summary(account, spend),
                                 now, ctx=ctx, channel=verdict.decision.verify)
        spend.release_at = verdict.decision.release_at and (spend.decided_at + (verdict.decision.release_at - now))
        return
    moved = spend.state != "delayed" or spend.release_at != verdict.until
    spend.state, spend.release_at = "delayed", verdict.until
    if moved:
        schedule(session, "spend.release", spend.id, verdict.until)
        ctx.notify(session, account.owner_device_id, "spend_delayed", now)


def _summary(account: Account, spend: Spend) -> dict:
    """All the verification page shows of a spend: amount, destinations, fee, account."""
    rows = [["Amount", f"{spend.external_sat:,} sat"]]
    rows += [["To", f"{o['address']} ({o['amount_sat']:,} sat)"] for o in spend.outputs if not o["change"]]
    rows.append(["Network fee", f"{spend.fee_sat:,} sat"])
    return {"title": "Send bitcoin", "account": account.name, "rows": rows}


def _fail(session: Session, ctx, account: Account, spend: Spend, reason: str, now: dt.datetime) -> Spend:
    spend.state, spend.error, spend.updated_at, spend.signed_psbt = "failed", reason, now, None
    unlock_coins(session, spend)
    audit.record(session, actor="system", action="spend.broadcast_failed", subject=spend.id,
                 details={"reason": reason}, now=now)
    return spend


def _cosign(ctx: CosignerContext, key: CosignerKey, view, psbt, intent: Intent) -> bytes:
    """Sign every input with the account's cosigner key (`key`, its sealed row; SIGHASH_ALL)
    and finalize. The key is decrypted here and nowhere else; it never leaves this function."""
    root = HDKey.from_string(open_secret(ctx.keyring, SealedSecret(key.kek_id, key.wrapped_dek, key.ciphertext),
                                         key.id).decode())
    account_key = None
    try:
        # the account-level key (4 hardened steps) derived once; each input then costs
        # the 2 steps below it (embit matches the PSBT's derivations against the origin)
        path = [int(step.rstrip("h'")) + HARDENED for step in key.path.split("/")]
        account_key = DescriptorKey(derive_private(root, path), origin=KeyOrigin(root.my_fingerprint, path))
        signed = psbt.sign_with(account_key, SIGHASH.ALL)
    finally:
        del root, account_key
    if signed < len(psbt.inputs):
        raise PsbtRejected("the server could not sign every input", code="cosign_failed")
    return finalize(psbt, intent.inputs, view)
