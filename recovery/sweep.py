"""Recovery-sweep mode, plugged into the spend flow through cosigner.hooks (importing
this module registers the hooks; app/recovery_api.py and workers/recovery_tasks.py do).

After a completed recovery the account (RecoveryAccountState.mode == "sweep"):
- needs the recovery key's signature instead of the platform key's (signer role);
- refuses every spend except the sweep this module built (`build`): every coin the
  chain index holds for the account (confirmed; reserved ones included) to one receive address of an account owned by the new device, fee subtracted from it,
  no change. The guard re-proves the destination by re-deriving it from that account's
  receive descriptor (an address issued to it), and checks the txid is the one built;
- tells the policy engine that this spend is the sweep (`is_sweep`: through a freeze).
"""
from __future__ import annotations

import datetime as dt

from embit.script import Script
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import services as audit
from chain.model import Coin
from cosigner import accounts, hooks
from cosigner import descriptors as d
from cosigner.errors import AccountNotFound, PsbtRejected, SpendStateError
from cosigner.model import CANCELLABLE_STATES, Account, IssuedAddress, Spend
from recovery.errors import SweepError
from recovery.model import RecoveryAccountState


def sweeping(session: Session, account_id: str) -> RecoveryAccountState | None:
    """The account's recovery state when it is in sweep mode (one query per gate decision:
    cosigner.hooks.memoized)."""
    state = hooks.memoized(session, ("recovery.sweeping", account_id),
                           lambda: session.get(RecoveryAccountState, account_id))
    return state if state is not None and state.mode == "sweep" else None


@hooks.register_signer_role
def _signer_role(session, account) -> str | None:
    return "recovery" if sweeping(session, account.id) else None


def destination_owned(session: Session, state: RecoveryAccountState, script_hex: str, network: str) -> bool:
    """Whether `script_hex` re-derives from the destination account's receive descriptor
    at an issued index, and that account belongs to the new owner."""
    dest = session.get(Account, state.destination_account_id) if state.destination_account_id else None
    if dest is None or dest.owner_device_id != state.new_owner_device_id or dest.id == state.account_id:
        return False
    from embit.script import Script
    for row in session.scalars(select(IssuedAddress).where(IssuedAddress.account_id == dest.id,
                                                           IssuedAddress.branch == 0)):
        derived = d.address(dest.receive_descriptor, row.index, network)
        if derived == row.address and Script.from_address(derived).data.hex() == script_hex:
            return True
    return False


@hooks.register_submit_guard
def _sweep_only(session, account, intent, now) -> None:
    state = sweeping(session, account.id)
    if state is None:
        return
    if state.sweep_txid is None or intent.txid != state.sweep_txid:
        raise PsbtRejected("this account is in recovery-sweep mode: only the sweep built by "
                           "POST /v1/accounts/{id}/sweep can be signed", code="recovery_sweep_only")
    for out in intent.outputs:
        if out.change or not destination_owned(session, state, out.script_hex, account.network):
            raise PsbtRejected("a sweep output is not an address of the new owner's account",
                               code="sweep_destination_not_owned")


@hooks.register_build_guard
def _no_normal_build(session, account) -> None:
    """Sweep mode: only POST /v1/accounts/{id}/sweep builds; nothing else reserves coins."""
    if sweeping(session, account.id) is not None:
        raise SpendStateError("this account is in recovery-sweep mode: build the sweep with "
                              "POST /v1/accounts/{id}/sweep", code="sweep_mode")


@hooks.register_sweep_check
def _is_sweep(session, account, intent) -> bool:
    state = sweeping(session, account.id)
    return bool(state and state.sweep_txid and intent.txid == state.sweep_txid)


def build(session: Session, cctx, account_id: str, device_id: str, destination_account_id: str, *,
          fee_rate: float | None, now: dt.datetime):
    """Build and record (cosigner.spends.record) the sweep: EVERY confirmed coin of the
    account in the chain index — those reserved by the old phone's open spends
    included: those spends (built, delayed, awaiting approval) are cancelled here, in
    the same transaction — to a fresh receive address of `destination_account_id`, fee
    subtracted, no change. Raises AccountNotFound, SweepError (not in sweep mode,
    unconfirmed funds, nothing to sweep, destination not the new owner's, incomplete).
    Returns the Spend."""
    account = accounts.get_owned(session, account_id, device_id)
    state = sweeping(session, account.id)
    if state is None or state.new_owner_device_id != device_id:
        raise SweepError("this account is not in recovery-sweep mode", code="not_in_sweep_mode")
    try:
        dest = accounts.get_owned(session, destination_account_id, device_id)
    except AccountNotFound:
        raise SweepError("the destination must be an account owned by this device",
                         code="sweep_destination_not_owned") from None
    if dest.id == account.id or dest.watch_only or sweeping(session, dest.id) or dest.network != account.network:
        raise SweepError("the destination must be another spendable account of this device",
                         code="sweep_destination_not_owned")
    state.destination_account_id = dest.id
    spend, unspent, cancelled = sweep_every_coin(session, cctx, account, dest, fee_rate=fee_rate, actor=device_id,
                                                 by="recovery_sweep", now=now)
    total = sum(c.amount_sat for c in unspent)
    state.sweep_spend_id, state.sweep_txid, state.updated_at = spend.id, spend.unsigned_txid, now
    audit.record(session, actor=device_id, action="recovery.sweep_built", subject=account.id,
                 details={"spend": spend.id, "destination": dest.id, "inputs": len(unspent), "total_sat": total,
                          "cancelled": cancelled}, now=now)
    return spend


def sweep_every_coin(session: Session, cctx, account: Account, dest: Account, *, fee_rate: float | None, actor: str,
                     by: str, now: dt.datetime, on_built=None) -> tuple[Spend, list, list]:
    """The part every sweep shares (recovery's and inheritance's): check the fee rate,
    take EVERY coin of `account` in the chain index (none may be unconfirmed), cancel the
    account's open spends so their coins are included (audited `spend.cancelled`, by
    `by`), build to a fresh receive address of `dest` with the fee subtracted and no
    change, call `on_built(unsigned_txid)` before the spend is recorded (so a policy
    hook can recognise it), record it and check it sweeps every coin. Raises SweepError
    (`invalid_fee_rate`, `unconfirmed_funds`, `nothing_to_sweep`, `sweep_incomplete`).
    Returns (spend, the coins swept, the ids of the cancelled spends)."""
    from embit.psbt import PSBT
    from cosigner import fees, reservations, spend_build, spends
    if fee_rate is not None and not 1.0 <= fee_rate <= 10_000.0:
        raise SweepError("fee_rate must be 1..10000 sat/vB", code="invalid_fee_rate")
    unspent = list(session.scalars(select(Coin).where(Coin.account_id == account.id, Coin.spent_by_txid.is_(None))))
    pending = [c for c in unspent if c.block_height is None]
    if pending:
        raise SweepError(f"{len(pending)} incoming payment(s) are not confirmed yet ({sum(c.amount_sat for c in pending)}"
                         " sat); sweep once they confirm so nothing is left behind", code="unconfirmed_funds",
                         details={"unconfirmed_sat": sum(c.amount_sat for c in pending), "coins": len(pending)})
    if not unspent:
        raise SweepError("there is nothing to sweep", code="nothing_to_sweep")
    cancelled = []
    for open_spend in session.scalars(select(Spend).where(Spend.account_id == account.id,
                                                          Spend.state.in_(CANCELLABLE_STATES)).with_for_update()):
        open_spend.state, open_spend.updated_at, open_spend.signed_psbt = "cancelled", now, None
        reservations.free(session, open_spend)
        cancelled.append(open_spend.id)
        audit.record(session, actor=actor, action="spend.cancelled", subject=open_spend.id,
                     details={"by": by}, now=now)
    session.flush()
    total = sum(c.amount_sat for c in unspent)
    address = accounts.issue_address(session, cctx, dest, now).address
    choice = fees.choose(cctx.node, fee_rate=fee_rate, conf_target=None, fallback_kvb=cctx.fee_fallback_kvb,
                         floor_kvb=cctx.fee_floor_kvb)
    spend_id = spends.new_spend_id()
    built = spend_build.build_spend(session, cctx.node, accounts.view(account, session), account.id, spend_id,
                                    outputs=[(Script.from_address(address).data, total)], rate_kvb=choice.rate_kvb,
                                    subtract_fee_from=[0], replaceable=True, now=now, use_all=True)
    if on_built is not None:
        on_built(PSBT.from_string(built.psbt).tx.txid().hex())
    spend = spends.record(session, cctx, account, built.psbt, now=now, spend_id=spend_id)
    swept = {(i["txid"], i["vout"]) for i in spend.inputs}
    if swept != {(c.txid, c.vout) for c in unspent} or any(o["change"] for o in spend.outputs):
        raise SweepError("the built transaction does not sweep every coin", code="sweep_incomplete")
    return spend, unspent, cancelled
