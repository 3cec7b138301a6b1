"""Telling people about a plan or a claim: content-free pushes, system messages (kinds
documented in messaging.system.KINDS) and mail to the recovery setup's address — through
recovery.notices, which owns those channels. Nothing secret is in any of them."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from cosigner.model import Account
from inheritance.context import InheritanceContext
from inheritance.model import InheritanceClaim
from recovery import notices
from recovery.model import RecoveryHolder, RecoverySetup


def tell(session: Session, ctx: InheritanceContext, device_id: str, push_kind: str, payload: dict | None,
         now: dt.datetime) -> None:
    """A push of `push_kind` and, with `payload`, a system message to one device."""
    notices.push(session, device_id, push_kind, now)
    if payload is not None:
        notices.system_message(session, ctx.recovery, device_id, payload, now)


def watchers(session: Session, claim: InheritanceClaim) -> tuple[str | None, list[RecoveryHolder]]:
    """(the account's owner device now, the other device holders of the claim's setup —
    neither the beneficiary nor the owner)."""
    account = session.get(Account, claim.account_id)
    owner = account.owner_device_id if account else None
    holders = [h for h in session.scalars(select(RecoveryHolder).where(RecoveryHolder.setup_id == claim.setup_id,
                                                                       RecoveryHolder.kind == "device"))
               if h.device_id not in (claim.beneficiary_device_id, owner)]
    return owner, holders


def tell_everyone(session: Session, ctx: InheritanceContext, claim: InheritanceClaim, *, push_kind: str, note: dict,
                  subject: str, body: str, now: dt.datetime) -> None:
    """Owner (push + system message `role: owner`), the other holders (push + system
    message `role: holder`) and the recovery e-mail address (mail `push_kind`)."""
    owner, holders = watchers(session, claim)
    if owner is not None:
        tell(session, ctx, owner, push_kind, {**note, "role": "owner"}, now)
    for h in holders:
        tell(session, ctx, h.device_id, push_kind, {**note, "role": "holder"}, now)
    setup = session.get(RecoverySetup, claim.setup_id)
    if setup is not None:
        notices.mail(session, ctx.recovery, setup, push_kind, subject, body, now)
