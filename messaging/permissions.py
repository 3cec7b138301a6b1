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

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from messaging.model import Contact
from store.base import utcnow

Rule = Callable[[Session, str, str, dt.datetime], bool]
_RULES: list[Rule] = []
_CONTACTS = Contact.__table__
_ARE_CONTACTS = select(_CONTACTS.c.id).where(_CONTACTS.c.device_a == bindparam("lo"),
                                             _CONTACTS.c.device_b == bindparam("hi")).limit(1)


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
