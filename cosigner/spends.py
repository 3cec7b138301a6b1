"""Spend use cases: build a PSBT from the account's own coins (chain index), accept what the phone signed,
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

from embit.script import Script
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import services as audit
from chain.errors import ChainRejected
from chain.rpc import btc_to_sat
from cosigner import accounts, coincheck, fees, gate, gate_prepare, hooks, policy_service, reservations, spend_build
from cosigner import vsize as vs
from cosigner.vsize import rate_to_kvb
from cosigner.context import CosignerContext
from cosigner.descriptors import network_params
from cosigner.errors import InvalidDescriptor, SpendNotFound, SpendStateError, WatchOnly
from cosigner.model import CANCELLABLE_STATES, OPEN_STATES, Account, Spend, SpendApproval
from cosigner.psbt import inspect, parse
from workers.jobs import schedule

DUST_SAT = 546
MAX_OUTPUTS = 100
MIN_FEE_RATE, MAX_FEE_RATE_REQUEST = 1.0, 10_000.0


def _check_outputs(outputs: list[dict], network: str) -> list[tuple[bytes, int]]:
    """Validate requested outputs; return [(scriptPubKey, amount_sat)]."""
    if not outputs or len(outputs) > MAX_OUTPUTS:
        raise InvalidDescriptor(f"1 to {MAX_OUTPUTS} outputs", code="invalid_outputs")
    hrp = network_params(network)["bech32"]
    seen, result = set(), []
    for o in outputs:
        address, amount = o["address"], o["amount_sat"]
        try:
            script = Script.from_address(address)
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
        result.append((script.data, amount))
    return result


def create(session: Session, ctx: CosignerContext, account: Account, *, outputs: list[dict],
           fee_rate: float | None, conf_target: int | None, subtract_fee_from: list[int],
           replaceable: bool, now: dt.datetime) -> Spend:
    """Select from the account's own confirmed, free coins (chain index), reserve them
    for SPEND_RESERVATION_TTL, build the PSBT with embit (change to the next unused
    change address), inspect it like any other PSBT and record it with a policy
    preview. All in the caller's transaction: a refusal reserves nothing."""
    if account.watch_only:
        raise WatchOnly("a watch-only account cannot spend")
    hooks.check_build(session, account)
    if fee_rate is not None and not MIN_FEE_RATE <= fee_rate <= MAX_FEE_RATE_REQUEST:
        raise InvalidDescriptor(f"fee_rate must be {MIN_FEE_RATE}..{MAX_FEE_RATE_REQUEST} sat/vB", code="invalid_fee_rate")
    spend_build.validate_request(outputs, subtract_fee_from)
    scripts = _check_outputs(outputs, account.network)
    choice = fees.choose(ctx.node, fee_rate=fee_rate, conf_target=conf_target, fallback_kvb=ctx.fee_fallback_kvb,
                         floor_kvb=ctx.fee_floor_kvb)
    view = accounts.view(account, session)
    spend_id = new_spend_id()
    built = spend_build.build_spend(session, ctx.node, view, account.id, spend_id, outputs=scripts,
                                    rate_kvb=choice.rate_kvb, subtract_fee_from=subtract_fee_from,
                                    replaceable=replaceable, now=now)
    return record(session, ctx, account, built.psbt, now=now, spend_id=spend_id)


def new_spend_id() -> str:
    return f"spend_{secrets.token_hex(12)}"


def record(session: Session, ctx: CosignerContext, account: Account, psbt_b64: str, *, now: dt.datetime,
           replaces: Spend | None = None, spend_id: str | None = None) -> Spend:
    """Inspect a PSBT built for `account` (by `create`, `bump` or another package, e.g.
    the recovery sweep), check every input against the chain index, record it as a
    `built` spend with its policy preview, and reserve its coins until now +
    SPEND_RESERVATION_TTL (a `spend.reservation_expiry` job expires it then). Raises
    PsbtRejected, CoinsTaken (a coin is held by another spend)."""
    psbt = parse(psbt_b64)
    view = accounts.view(account, session)
    replacing = replaces.txid if replaces else None
    coincheck.check_inputs(session, account.id, psbt, replacing=replacing)
    intent = inspect(psbt, view, caps=ctx.caps, require_platform_signature=False)
    decision = hooks.policy_rule(session, account, intent, now) or policy_service.decide(
        session, account, intent, spend_id=None, now=now, lock=False, sweep=hooks.is_sweep(session, account, intent))
    until = now + dt.timedelta(seconds=ctx.reservation_ttl)
    spend = Spend(id=spend_id or new_spend_id(), account_id=account.id, state="built", psbt=psbt_b64,
                  unsigned_txid=intent.txid, fee_sat=intent.fee_sat, fee_rate=intent.fee_rate, vsize=intent.vsize,
                  external_sat=intent.external_sat, inputs=[_input(i) for i in intent.inputs],
                  outputs=[_output(o) for o in intent.outputs], decision=decision.as_dict(),
                  replaces_id=replaces.id if replaces else None, created_at=now, updated_at=now,
                  reserved_until=until)
    session.add(spend)
    session.flush()
    reservations.reserve(session, [(i.txid, i.vout) for i in intent.inputs], spend.id, until, now,
                         spent_by=replacing, taking_from=replaces.id if replaces else None)
    schedule(session, "spend.reservation_expiry", spend.id, until)
    audit.record(session, actor=account.owner_device_id, action="spend.built", subject=spend.id,
                 details={"account": account.id, "fee_sat": intent.fee_sat, "external_sat": intent.external_sat,
                          "replaces": spend.replaces_id, "inputs": len(intent.inputs)}, now=now)
    return spend


def _input(i) -> dict:
    return {"txid": i.txid, "vout": i.vout, "amount_sat": i.amount_sat, "branch": i.branch, "index": i.index}


def _output(o) -> dict:
    return {"index": o.index, "address": o.address, "amount_sat": o.amount_sat, "change": o.change,
            "change_index": o.change_index}


def get_owned(session: Session, spend_id: str, device_id: str, *, lock: bool = False) -> tuple[Spend, Account]:
    """The spend and its account, in one query, if `device_id` owns the account;
    SpendNotFound otherwise (no existence leak). `lock`: the spend's row (FOR UPDATE; not
    the account's)."""
    return _owned(session, spend_id, device_id, lock=lock)


def _owned(session: Session, spend_id: str, device_id: str, *, lock: bool = False) -> tuple[Spend, Account]:
    """(spend, account) from one query; SpendNotFound unless `device_id` owns the account."""
    if not isinstance(spend_id, str) or len(spend_id) > 40:
        raise SpendNotFound("no such spend")
    stmt = select(Spend, Account).join(Account, Account.id == Spend.account_id).where(Spend.id == spend_id)
    if lock:
        stmt = stmt.with_for_update(of=Spend.__table__)
    row = session.execute(stmt).first()
    if row is None or row[1].owner_device_id != device_id:
        raise SpendNotFound("no such spend")
    return tuple(row)


def submit(session: Session, ctx: CosignerContext, spend_id: str, device_id: str, psbt_b64: str,
           now: dt.datetime) -> Spend:
    """Accept the phone-signed PSBT and hand it to the signing gate, which cosigns and
    broadcasts (`broadcast`), holds it (`delayed` / `awaiting_approval`), records the
    refusal (`denied`: the caller reports 422 after committing) or records bitcoind's
    refusal (`failed`). Idempotent for the same signed PSBT; raises PsbtRejected /
    SpendStateError / SpendNotFound with nothing changed.

    The PSBT is parsed and inspected before the account is locked (`gate.prepare`, on
    the spend and account as read without a lock: plain values, `gate_prepare.read`);
    the gate's Spend and Account rows are loaded once, under the locks, and there the
    ownership and state are checked again, the inputs re-reserved strictly, and the gate
    decides with the state of now (re-inspecting unless the preparation still fits)."""
    if not isinstance(spend_id, str) or len(spend_id) > 40:
        raise SpendNotFound("no such spend")
    digest = hashlib.sha256(psbt_b64.strip().encode()).hexdigest()
    seen, owner, _key = gate_prepare.read(session, spend_id) or (None, None, None)   # no lock; _key: held
    if seen is None or owner.owner_device_id != device_id:
        raise SpendNotFound("no such spend")
    prepared = None
    if seen.state in OPEN_STATES:
        prepared = gate.prepare(session, ctx, seen, owner, psbt_b64)
    spend, account = gate.lock_spend(session, spend_id, account_id=seen.account_id)
    if account.owner_device_id != device_id:
        raise SpendNotFound("no such spend")
    if spend.submitted_digest == digest and spend.state not in OPEN_STATES:
        return spend
    if spend.state not in OPEN_STATES:
        raise SpendStateError(f"spend is {spend.state}", code="spend_not_open")
    reservations.keep(session, spend, now, ctx.reservation_ttl, strict=True)  # a lapsed reservation is taken back
    spend.submitted_digest, spend.updated_at = digest, now
    return gate.authorize_and_sign(session, ctx, spend, account, psbt_b64=psbt_b64, actor=device_id, now=now,
                                   prepared=prepared)


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
        gate.unlock_coins(session, spend)
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
    gate.unlock_coins(session, spend)
    audit.record(session, actor="system", action="spend.approval_expired", subject=spend.id, details={}, now=now)
    ctx.notify(session, account.owner_device_id, "approval_expired", now)


def cancel(session: Session, ctx: CosignerContext, spend_id: str, device_id: str, now: dt.datetime) -> Spend:
    """Cancel a spend that was not broadcast (built, delayed, awaiting approval or
    verification).
    Idempotent for an already cancelled spend."""
    spend, account = get_owned(session, spend_id, device_id, lock=True)
    if spend.state == "cancelled":
        return spend
    if spend.state not in CANCELLABLE_STATES:
        raise SpendStateError(f"a {spend.state} spend cannot be cancelled", code="spend_not_open")
    spend.state, spend.updated_at, spend.signed_psbt = "cancelled", now, None
    gate.unlock_coins(session, spend)
    from verification import withdraw
    withdraw(session, "spend", spend.id, now, reason="cancelled")   # its e-mailed links stop working
    audit.record(session, actor=device_id, action="spend.cancelled", subject=spend.id, details={}, now=now)
    return spend


def bump(session: Session, ctx: CosignerContext, spend_id: str, device_id: str, fee_rate: float,
         now: dt.datetime) -> Spend:
    """An RBF replacement built by the server: the same inputs (more only if they cannot
    pay), the same external outputs, lower change, at `fee_rate` sat/vB, which must
    exceed the original's rate by the node's incremental relay fee (BIP125; the
    absolute fee rule is met too). Recorded as a new `built` spend that replaces this
    one once broadcast; it is signed and goes through the signing path like any other.
    Raises SpendStateError(spend_not_bumpable), InvalidDescriptor(fee_rate_too_low)."""
    spend, account = get_owned(session, spend_id, device_id, lock=True)
    if spend.state != "broadcast" or not spend.txid:
        raise SpendStateError("only a broadcast, unconfirmed spend can be bumped", code="spend_not_bumpable")
    if not MIN_FEE_RATE <= fee_rate <= MAX_FEE_RATE_REQUEST:
        raise InvalidDescriptor(f"fee_rate must be {MIN_FEE_RATE}..{MAX_FEE_RATE_REQUEST} sat/vB", code="invalid_fee_rate")
    try:
        entry = ctx.node.call("getmempoolentry", spend.txid)
    except ChainRejected:
        raise SpendStateError("the spend is no longer in the mempool (confirmed or dropped)",
                              code="spend_not_bumpable") from None
    old_fee, old_vsize = btc_to_sat(entry["fees"]["base"]), int(entry["vsize"])
    incremental = fees.mempool_info(ctx.node)["incremental_kvb"]
    minimum = -(-old_fee * 1000 // old_vsize) + incremental
    rate = max(rate_to_kvb(fee_rate), ctx.fee_floor_kvb)
    if rate < minimum:
        raise InvalidDescriptor(f"a replacement must pay at least {minimum / 1000} sat/vB", code="fee_rate_too_low",
                                details={"minimum_sat_vb": minimum / 1000})
    coins = reservations.lookup(session, [(i["txid"], i["vout"]) for i in spend.inputs])
    if len(coins) != len(spend.inputs) or any(c.spent_height is not None for c in coins.values()):
        raise SpendStateError("the spend's inputs are already confirmed spent", code="spend_not_bumpable")
    tx = parse(spend.psbt).tx
    externals = [(tx.vout[o["index"]].script_pubkey.data, o["amount_sat"]) for o in spend.outputs if not o["change"]]
    view = accounts.view(account, session)
    new_id = new_spend_id()
    for _ in range(2):  # BIP125 rule 4: new fee >= old fee + incremental x new size
        built = spend_build.build_spend(session, ctx.node, view, account.id, new_id, outputs=externals,
                                        rate_kvb=rate, subtract_fee_from=[], replaceable=True, now=now,
                                        preselected=tuple(coins.values()), replacing=(spend.txid, spend.id))
        needed = old_fee + vs.fee(built.selection.vsize, incremental)
        if built.selection.fee >= needed:
            break
        rate = -(-needed * 1000 // built.selection.vsize)
    return record(session, ctx, account, built.psbt, now=now, replaces=spend, spend_id=new_id)
