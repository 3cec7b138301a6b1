"""Messaging rule: while a case is collecting, waiting or released, its requester and the
share holders of the account being recovered may message each other (so a contact can
talk to the recovering phone end to end). Importing this module registers the rule."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from messaging.permissions import register_rule
from recovery.machine import CONTACT_STATES
from recovery.model import RecoveryCase, RecoveryHolder


def _linked(session: Session, requester: str, holder: str) -> bool:
    return session.scalar(
        select(RecoveryCase.id).join(RecoveryHolder, RecoveryHolder.setup_id == RecoveryCase.setup_id)
        .where(RecoveryCase.requester_device_id == requester, RecoveryCase.state.in_(CONTACT_STATES),
               RecoveryHolder.device_id == holder).limit(1)) is not None


@register_rule
def recovering_device_and_holders(session: Session, sender: str, recipient: str, now: dt.datetime) -> bool:
    return _linked(session, sender, recipient) or _linked(session, recipient, sender)
