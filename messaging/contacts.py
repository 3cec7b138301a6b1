"""Contacts: single-use invites (only a hash of the code is stored), two-way contact
relationships, and the QR payload that carries an invite between phones."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audit import services as audit
from devices.model import Device
from messaging.errors import (ContactNotFound, InvalidRequest, InviteExpired, InviteNotFound, KeysNotFound, OwnInvite,
                              QuotaExceeded)
from messaging.limits import INVITE_TTL, MAX_CONTACTS, MAX_DISPLAY_NAME, MAX_PENDING_INVITES
from messaging.model import Contact, Invite
from messaging.prekeys import fingerprint, identity_key
from messaging.qr import CODE_PATTERN, QrPayload

CODE_BYTES = 32                      # 256 bits; token_urlsafe → 43 characters


@dataclass(frozen=True)
class NewInvite:
    invite: Invite
    code: str            # returned once; the server keeps only its hash
    qr: QrPayload


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _name(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not 1 <= len(value) <= MAX_DISPLAY_NAME or any(ord(c) < 32 for c in value):
        raise InvalidRequest(f"{what} must be 1..{MAX_DISPLAY_NAME} printable characters", code="invalid_display_name")
    return value


def create_invite(session: Session, inviter_id: str, display_name: str, receive_address: str | None, *,
                  now: dt.datetime) -> NewInvite:
    """A single-use invite valid for INVITE_TTL. The inviter must have uploaded keys (the
    QR code pins its identity key). Raises KeysNotFound otherwise."""
    name = _name(display_name, "display_name")
    ik = identity_key(session, inviter_id)
    if ik is None:
        raise KeysNotFound("upload your prekeys before inviting contacts")
    _lock_devices(session, inviter_id)
    pending = session.scalar(select(func.count()).select_from(Invite).where(
        Invite.inviter_id == inviter_id, Invite.accepted_at.is_(None), Invite.expires_at > now))
    if pending >= MAX_PENDING_INVITES:
        raise QuotaExceeded(f"at most {MAX_PENDING_INVITES} open invites per device; wait for one to be used or "
                            "to expire", code="invite_quota_exceeded", details={"limit": MAX_PENDING_INVITES})
    code = secrets.token_urlsafe(CODE_BYTES)
    invite = Invite(id="inv_" + secrets.token_hex(12), code_hash=hash_code(code), inviter_id=inviter_id,
                    display_name=name, created_at=now, expires_at=now + INVITE_TTL)
    session.add(invite)
    session.flush()
    audit.record(session, actor=inviter_id, action="contacts.invite_created", subject=invite.id, details={}, now=now)
    return NewInvite(invite, code, QrPayload(code, fingerprint(ik), name, receive_address))


def accept_invite(session: Session, acceptor_id: str, code: str, display_name: str | None, *,
                  now: dt.datetime) -> tuple[Contact, bool]:
    """Consume the invite and create the two-way contact. Returns (contact, created);
    already being contacts consumes the invite and returns the existing contact.
    Raises InviteNotFound (unknown, malformed or used), InviteExpired, OwnInvite."""
    name = _name(display_name, "display_name")
    if not isinstance(code, str) or not CODE_PATTERN.match(code):
        raise InviteNotFound("no such invite")
    invite = session.scalar(select(Invite).where(Invite.code_hash == hash_code(code)))
    if invite is None or invite.accepted_at is not None:
        raise InviteNotFound("no such invite")
    if invite.expires_at <= now:
        raise InviteExpired("this invite has expired")
    if invite.inviter_id == acceptor_id:
        raise OwnInvite("you cannot accept your own invite")
    inviter = session.get(Device, invite.inviter_id)
    if inviter is None or inviter.revoked:
        raise InviteNotFound("no such invite")
    claimed = session.execute(update(Invite).where(Invite.id == invite.id, Invite.accepted_at.is_(None))
                              .values(accepted_at=now, accepted_by=acceptor_id)).rowcount
    if claimed != 1:
        raise InviteNotFound("no such invite")
    (a, name_a), (b, name_b) = sorted([(invite.inviter_id, invite.display_name), (acceptor_id, name)])
    existing = session.scalar(select(Contact).where(Contact.device_a == a, Contact.device_b == b))
    if existing is not None:
        return existing, False
    _lock_devices(session, a, b)
    for side in (a, b):
        if count_contacts(session, side) >= MAX_CONTACTS:
            raise QuotaExceeded(f"a device may have at most {MAX_CONTACTS} contacts", code="contact_quota_exceeded",
                                details={"limit": MAX_CONTACTS})
    contact = Contact(id="con_" + secrets.token_hex(12), device_a=a, name_a=name_a, device_b=b, name_b=name_b,
                      created_at=now)
    try:
        with session.begin_nested():
            session.add(contact)
    except IntegrityError:  # a concurrent accept of another invite between the same two
        existing = session.scalar(select(Contact).where(Contact.device_a == a, Contact.device_b == b))
        return existing, False
    audit.record(session, actor=acceptor_id, action="contacts.created", subject=contact.id,
                 details={"invite": invite.id, "a": a, "b": b}, now=now)
    return contact, True


def _lock_devices(session: Session, *device_ids: str) -> None:
    """Serialize quota checks per device (row locks on PostgreSQL, the write lock on
    SQLite), in sorted order so two accepts never deadlock."""
    for device_id in sorted(set(device_ids)):
        session.execute(update(Device).where(Device.id == device_id).values(id=Device.id))


def count_contacts(session: Session, device_id: str) -> int:
    return session.scalar(select(func.count()).select_from(Contact).where(
        or_(Contact.device_a == device_id, Contact.device_b == device_id))) or 0


def list_contacts(session: Session, device_id: str) -> list[Contact]:
    return list(session.scalars(select(Contact).where(or_(Contact.device_a == device_id,
                                                          Contact.device_b == device_id))
                                .order_by(Contact.created_at, Contact.id)))


def delete_contact(session: Session, device_id: str, contact_id: str, *, now: dt.datetime) -> None:
    """Either side ends the relationship. Raises ContactNotFound for an unknown id or
    one the caller is not part of."""
    contact = session.get(Contact, contact_id) if isinstance(contact_id, str) and len(contact_id) <= 40 else None
    if contact is None or device_id not in (contact.device_a, contact.device_b):
        raise ContactNotFound("no such contact")
    session.delete(contact)
    audit.record(session, actor=device_id, action="contacts.deleted", subject=contact_id, details={}, now=now)


def purge_invites(session: Session, now: dt.datetime) -> int:
    """Delete invites that expired (used or not) more than a day ago. Idempotent."""
    from sqlalchemy import delete
    return session.execute(delete(Invite).where(Invite.expires_at <= now - dt.timedelta(days=1))).rowcount or 0


