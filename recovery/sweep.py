"""Recovery-sweep mode, plugged into the spend flow through cosigner.hooks (importing
this module registers the hooks; app/recovery_api.py and workers/recovery_tasks.py do).

After a completed recovery the account (RecoveryAccountState.mode == "sweep"):
- needs the recovery key's signature instead of the platform key's (signer role);
- refuses every spend except the sweep this module built (`build`): all confirmed UTXOs
  to one receive address of an account owned by the new device, fee subtracted from it,
  no change. The guard re-proves the destination by re-deriving it from that account's
  receive descriptor (an address issued to it), and checks the txid is the one built;
- tells the policy engine that this spend is the sweep (`is_sweep`: through a freeze).
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import services as audit
from chain import wallets
from chain.rpc import btc_to_sat, sat_to_btc
from cosigner import accounts, hooks
from cosigner import descriptors as d
from cosigner.errors import AccountNotFound, PsbtRejected
from cosigner.model import Account, IssuedAddress
from recovery.errors import SweepError
from recovery.model import RecoveryAccountState


def sweeping(session: Session, account_id: str) -> RecoveryAccountState | None:
    state = session.get(RecoveryAccountState, account_id)
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


@hooks.register_sweep_check
def _is_sweep(session, account, intent) -> bool:
    state = sweeping(session, account.id)
    return bool(state and state.sweep_txid and intent.txid == state.sweep_txid)


def build(session: Session, cctx, account_id: str, device_id: str, destination_account_id: str, *,
          fee_rate: float | None, now: dt.datetime):
    """Build and record (cosigner.spends.record) the sweep: every confirmed UTXO of the
    account to a fresh receive address of `destination_account_id`, fee subtracted.
    Raises AccountNotFound, SweepError (not in sweep mode, unconfirmed funds, nothing to
    sweep, destination not the new owner's). Returns the Spend."""
    from cosigner import spends
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
    if fee_rate is not None and not 1.0 <= fee_rate <= 10_000.0:
        raise SweepError("fee_rate must be 1..10000 sat/vB", code="invalid_fee_rate")
    wallet = wallets.wallet_for(cctx.node, cctx.wallet_prefix, account.id)
    confirmed = wallet.call("listunspent", 1, 9_999_999)
    everything = wallet.call("listunspent", 0, 9_999_999)
    if len(everything) != len(confirmed):
        raise SweepError("some funds are unconfirmed; sweep once they confirm", code="unconfirmed_funds")
    if not confirmed:
        raise SweepError("there is nothing to sweep", code="nothing_to_sweep")
    total = sum(btc_to_sat(u["amount"]) for u in confirmed)
    address = accounts.issue_address(session, cctx, dest, now).address
    options = {"add_inputs": False, "subtractFeeFromOutputs": [0], "replaceable": True, "includeWatching": True}
    if fee_rate is not None:
        options["fee_rate"] = Decimal(str(fee_rate))
    funded = wallet.call("walletcreatefundedpsbt", [{"txid": u["txid"], "vout": u["vout"]} for u in confirmed],
                         [{address: sat_to_btc(total)}], 0, options, True)
    state.destination_account_id = dest.id
    spend = spends.record(session, cctx, account, funded["psbt"], now=now)
    if len(spend.inputs) != len(confirmed) or any(o["change"] for o in spend.outputs):
        raise SweepError("the built transaction does not sweep every UTXO", code="sweep_incomplete")
    state.sweep_spend_id, state.sweep_txid, state.updated_at = spend.id, spend.unsigned_txid, now
    audit.record(session, actor=device_id, action="recovery.sweep_built", subject=account.id,
                 details={"spend": spend.id, "destination": dest.id, "inputs": len(confirmed), "total_sat": total},
                 now=now)
    return spend
