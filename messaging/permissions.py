"""Who may message (and fetch the prekey bundle of) whom.

Contacts may reach each other. Other flows (a recovering device reaching the contacts of
the account it is recovering while that case is open) register an extra rule:

    from messaging.permissions import register_rule

    @register_rule
    def recovering_device_may_reach_contacts(session, sender, recipient, now) -> bool:
        ...

A rule returns True to allow; rules cannot deny what contact status allows.
"""
from __future__ import annotations

import datetime as dt
from typing import Callable

from sqlalchemy import and_, bindparam, exists, or_, select
from sqlalchemy.orm import Session

from devices.model import Device
from messaging.model import Contact
from store.base import utcnow

Rule = Callable[[Session, str, str, dt.datetime], bool]
_RULES: list[Rule] = []
_CONTACTS = Contact.__table__
_ARE_CONTACTS = select(_CONTACTS.c.id).where(_CONTACTS.c.device_a == bindparam("lo"),
                                             _CONTACTS.c.device_b == bindparam("hi")).limit(1)
_DEVICES = Device.__table__
# each active device among :ids, and whether it is a contact of :sender (pairs are stored
# sorted, so the sender is on either side); built once
_ACTIVE_AND_CONTACT = select(_DEVICES.c.id, exists().where(or_(
    and_(_CONTACTS.c.device_a == bindparam("sender"), _CONTACTS.c.device_b == _DEVICES.c.id),
    and_(_CONTACTS.c.device_a == _DEVICES.c.id, _CONTACTS.c.device_b == bindparam("sender"))))).where(
    _DEVICES.c.id.in_(bindparam("ids", expanding=True)), _DEVICES.c.revoked_at.is_(None))


def register_rule(rule: Rule) -> Rule:
    """Add an allow rule (idempotent per function). Usable as a decorator."""
    if rule not in _RULES:
        _RULES.append(rule)
    return rule


def unregister_rule(rule: Rule) -> None:
    if rule in _RULES:
        _RULES.remove(rule)


def are_contacts(session: Session, a: str, b: str) -> bool:
    lo, hi = sorted((a, b))
    return session.scalar(_ARE_CONTACTS, {"lo": lo, "hi": hi}) is not None


def reachable(session: Session, sender: str, recipients: list[str], now: dt.datetime) -> dict[str, bool]:
    """{recipient: may `sender` message it} for the active devices among `recipients`
    (a revoked or unknown one is absent). One statement finds them and which are
    contacts; the registered rules are asked only for the others (as `may_message`)."""
    out = {}
    for device_id, contact in session.execute(_ACTIVE_AND_CONTACT, {"sender": sender, "ids": list(recipients)}):
        out[device_id] = device_id != sender and (
            bool(contact) or any(rule(session, sender, device_id, now) for rule in list(_RULES)))
    return out


def may_message(session: Session, sender: str, recipient: str, now: dt.datetime | None = None) -> bool:
    """True if `sender` may queue messages for (and fetch the prekey bundle of)
    `recipient`: they are contacts, or a registered rule allows it. A device never
    messages itself through the server."""
    if sender == recipient:
        return False
    if are_contacts(session, sender, recipient):
        return True
    now = now or utcnow()
    return any(rule(session, sender, recipient, now) for rule in list(_RULES))
