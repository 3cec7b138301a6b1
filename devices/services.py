"""Device use cases. Each takes an open session (the caller owns the transaction) and
`now`; each state change writes an audit event in the same transaction."""
from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from audit import services as audit
from devices.errors import DeviceNotFound, DeviceRevoked, KeyAlreadyRegistered
from devices.keys import fingerprint
from devices.model import Device


def new_device_id() -> str:
    return "dev_" + secrets.token_hex(16)


def register(session: Session, *, key_type: str, public_key: bytes, platform: str | None,
             push_token: str | None, now: dt.datetime) -> tuple[Device, bool]:
    """Register a device for an already validated public key (see devices.keys).

    Idempotent per key: registering a key again returns the existing device and
    `created=False` (updating nothing). Raises KeyAlreadyRegistered if that device was
    revoked — a revoked key never comes back.
    """
    fp = fingerprint(public_key)
    existing = session.scalar(select(Device).where(Device.key_fingerprint == fp))
    if existing is not None:
        if existing.revoked:
            raise KeyAlreadyRegistered("this key belonged to a revoked device; generate a new key")
        return existing, False
    device = Device(id=new_device_id(), key_type=key_type, public_key=public_key,
                    key_fingerprint=fp, platform=platform, push_token=push_token, created_at=now)
    session.add(device)
    session.flush()
    audit.record(session, actor=device.id, action="device.registered", subject=device.id,
                 details={"key_type": key_type, "platform": platform}, now=now)
    return device, True


_DEVICES = Device.__table__
_BY_ID = select(*_DEVICES.c).where(_DEVICES.c.id == bindparam("id"))   # built once
_AUTHENTICATED = "custos.authenticated_devices"   # session.info: rows read by authenticate()


def authenticate(session: Session, device_id: str) -> Row:
    """The device as a read-only row (id, key_type, public_key, key_fingerprint, platform,
    push_token, created_at, revoked_at) if it exists and is not revoked: what request
    authentication needs, in one SELECT on the session's connection and without an ORM
    instance. Rows are immutable; a use case that changes the device loads it with
    get_active. Raises DeviceNotFound / DeviceRevoked."""
    row = None
    if isinstance(device_id, str) and len(device_id) <= 40:
        row = session.connection().execute(_BY_ID, {"id": device_id}).first()
    if row is None:
        raise DeviceNotFound("no device with this id")
    if row.revoked_at is not None:
        raise DeviceRevoked("this device has been revoked")
    session.info.setdefault(_AUTHENTICATED, {})[row.id] = row
    return row


def _held(session: Session, device_id: str) -> Device | None:
    """The ORM device for a row authenticate() read in this session, attached to the
    session without another query (None if there is no such row or the session already
    holds the object)."""
    row = session.info.get(_AUTHENTICATED, {}).pop(device_id, None)
    if row is None or session.identity_map.get(identity_key(Device, device_id)) is not None:
        return None
    device = Device(**row._mapping)
    make_transient_to_detached(device)
    session.add(device)
    return device


def get_active(session: Session, device_id: str) -> Device:
    """The device (ORM object), if it exists and is not revoked; no query when the
    request authenticated it in this session. Raises DeviceNotFound / DeviceRevoked."""
    device = None
    if isinstance(device_id, str) and len(device_id) <= 40:
        device = _held(session, device_id) or session.get(Device, device_id)
    if device is None:
        raise DeviceNotFound("no device with this id")
    if device.revoked:
        raise DeviceRevoked("this device has been revoked")
    return device


def set_push_token(session: Session, device_id: str, push_token: str | None, *, now: dt.datetime) -> Device:
    """Replace (or clear, with None) the device's push token. Idempotent."""
    device = get_active(session, device_id)
    if device.push_token != push_token:
        device.push_token = push_token
        audit.record(session, actor=device.id, action="device.push_token_set", subject=device.id,
                     details={"cleared": push_token is None}, now=now)
    return device


def revoke(session: Session, device_id: str, *, now: dt.datetime, actor: str | None = None) -> Device:
    """Revoke a device: every later request signed by its key gets 401 device_revoked.
    Raises DeviceRevoked if already revoked."""
    device = get_active(session, device_id)
    device.revoked_at = now
    device.push_token = None
    audit.record(session, actor=actor or device.id, action="device.revoked", subject=device.id,
                 details={}, now=now)
    return device
