"""Completing a recovery: the requester proves it rebuilt the recovery key by signing
the case challenge with the recovery account key's child at COMPLETE_PATH (/9/0,
non-hardened below the registered BIP48 xpub). Then the new device owns the account,
the old owner device is revoked, other open cases of the account are cancelled, and the
account enters recovery-sweep mode (see recovery.sweep)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import services as audit
from cosigner.model import Account
from devices import services as devices
from devices.model import Device
from recovery import machine
from recovery.cases import _move, _require_open, get_for_requester
from recovery.context import RecoveryContext
from recovery.errors import CaseStateError
from recovery.model import RecoveryAccountState, RecoveryCase
from recovery.secrets_box import verify_completion


def complete(session: Session, ctx: RecoveryContext, case_id, device_id: str, signature: bytes,
             now: dt.datetime) -> RecoveryCase:
    """released → completed. Raises ProofInvalid (nothing changes), CaseStateError
    (not released yet), CaseClosed. Idempotent for an already completed case of the
    same requester."""
    case = get_for_requester(session, case_id, device_id, lock=True)
    if case.state == "completed":
        return case
    _require_open(session, ctx, case, now)
    if case.state != "released":
        raise CaseStateError(f"the case is {case.state}; it can be completed once the operator's share is released",
                             code="case_not_released")
    account = session.get(Account, case.account_id, with_for_update=True)
    verify_completion(account.recovery_key["xpub"], case.id, case.challenge, signature)
    _move(session, case, "completed", now, by=device_id)
    old_owner = account.owner_device_id
    account.owner_device_id = device_id
    old = session.get(Device, old_owner)
    if old is not None and not old.revoked and old_owner != device_id:
        devices.revoke(session, old_owner, now=now, actor=f"recovery:{case.id}")
    state = session.get(RecoveryAccountState, account.id)
    if state is None:
        state = RecoveryAccountState(account_id=account.id, updated_at=now)
        session.add(state)
    state.mode, state.case_id, state.new_owner_device_id = "sweep", case.id, device_id
    state.sweep_spend_id = state.sweep_txid = state.destination_account_id = None
    state.updated_at = now
    for other in session.scalars(select(RecoveryCase).where(RecoveryCase.account_id == account.id,
                                                            RecoveryCase.id != case.id,
                                                            RecoveryCase.state.in_(machine.OPEN_STATES))):
        _move(session, other, "cancelled", now, reason="superseded")
    audit.record(session, actor=device_id, action="recovery.owner_changed", subject=account.id,
                 details={"case": case.id, "from": old_owner, "to": device_id, "mode": "sweep"}, now=now)
    return case
