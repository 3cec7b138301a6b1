"""The Signal (X3DH) prekey directory.

Each use case takes an open session (the caller owns the transaction) and `now`.
Key material is public only: identity keys, signed prekeys with their signatures,
one-time prekeys and a last-resort prekey, each a 33-byte serialized Curve25519 key.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from audit import services as audit
from messaging import xeddsa
from messaging.encoding import b64decode
from messaging.errors import InvalidKeys, KeysNotFound, NotPermitted
from messaging.limits import MAX_PREKEYS_PER_UPLOAD
from messaging.model import KeySet, OneTimePreKey, SignedPreKey
from messaging.notify import REPLENISH, notify
from messaging.permissions import may_message

MAX_KEY_ID = 0xFFFFFF


@dataclass(frozen=True)
class PreKey:
    key_id: int
    public_key: bytes


@dataclass(frozen=True)
class SignedKey:
    key_id: int
    public_key: bytes
    signature: bytes


@dataclass(frozen=True)
class Upload:
    """A validated `PUT /v1/keys` body. None fields are left as stored."""
    identity_key: bytes
    registration_id: int
    signed_prekey: SignedKey | None
    one_time_prekeys: tuple[PreKey, ...] | None
    last_resort: PreKey | None


@dataclass(frozen=True)
class Bundle:
    device_id: str
    registration_id: int
    identity_key: bytes
    signed_prekey: SignedKey
    one_time_prekey: PreKey
    last_resort: bool          # True: the one-time pool was empty; this is the last-resort key


def fingerprint(identity_key: bytes) -> str:
    """What a QR code carries to pin a contact's identity key: SHA-256 hex."""
    return hashlib.sha256(identity_key).hexdigest()


def _key_id(value, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_KEY_ID:
        raise InvalidKeys(f"{what} must be an integer between 0 and {MAX_KEY_ID}")
    return value


def _public(value, what: str) -> bytes:
    raw = b64decode(value, what=what, error=InvalidKeys, exact=33)
    if not xeddsa.is_djb_key(raw):
        raise InvalidKeys(f"{what} must be a serialized Curve25519 key (type byte 0x05)")
    return raw


def parse_upload(body: dict) -> Upload:
    """Validate a key upload (already shaped by the schema). Verifies the signed prekey's
    signature against the identity key. Raises InvalidKeys naming the first problem."""
    identity = _public(body.get("identity_key"), "identity_key")
    signed = None
    if body.get("signed_prekey") is not None:
        s = body["signed_prekey"]
        signed = SignedKey(_key_id(s.get("key_id"), "signed_prekey.key_id"),
                           _public(s.get("public_key"), "signed_prekey.public_key"),
                           b64decode(s.get("signature"), what="signed_prekey.signature", error=InvalidKeys,
                                     exact=64))
        if not xeddsa.verify(identity, signed.public_key, signed.signature):
            raise InvalidKeys("signed_prekey.signature does not verify with identity_key",
                              code="invalid_signed_prekey_signature")
    otks = None
    if body.get("one_time_prekeys") is not None:
        items = body["one_time_prekeys"]
        if len(items) > MAX_PREKEYS_PER_UPLOAD:
            raise InvalidKeys(f"at most {MAX_PREKEYS_PER_UPLOAD} one-time prekeys per upload")
        otks = tuple(PreKey(_key_id(k.get("key_id"), "one_time_prekeys.key_id"),
                            _public(k.get("public_key"), "one_time_prekeys.public_key")) for k in items)
        if len({k.key_id for k in otks}) != len(otks):
            raise InvalidKeys("one_time_prekeys contain a duplicate key_id")
    last = None
    if body.get("last_resort_key") is not None:
        lr = body["last_resort_key"]
        last = PreKey(_key_id(lr.get("key_id"), "last_resort_key.key_id"),
                      _public(lr.get("public_key"), "last_resort_key.public_key"))
    reg = body.get("registration_id", 0)
    if not isinstance(reg, int) or isinstance(reg, bool) or not 0 <= reg <= 0x7FFFFFFF:
        raise InvalidKeys("registration_id must be a non-negative 31-bit integer")
    return Upload(identity, reg, signed, otks, last)


def upload(session: Session, device_id: str, up: Upload, *, now: dt.datetime) -> int:
    """Store a device's keys. The first upload (or one with a new identity key, which
    wipes every older key) must carry a signed prekey and a last-resort key. One-time
    prekeys, when given, replace the pool. A new signed prekey supersedes the current one,
    which is kept until the grace period ends. Returns the number of one-time prekeys left.
    Idempotent for the same body."""
    ks = session.get(KeySet, device_id, with_for_update=True)
    new_identity = ks is None or ks.identity_key != up.identity_key
    if new_identity and (up.signed_prekey is None or up.last_resort is None):
        raise InvalidKeys("the first upload for an identity key needs signed_prekey and last_resort_key",
                          code="incomplete_keys")
    if ks is not None and new_identity:
        session.execute(delete(SignedPreKey).where(SignedPreKey.device_id == device_id))
        session.execute(delete(OneTimePreKey).where(OneTimePreKey.device_id == device_id))
    if ks is None:
        ks = KeySet(device_id=device_id)
        session.add(ks)
    ks.identity_key, ks.registration_id, ks.updated_at = up.identity_key, up.registration_id, now
    if up.last_resort is not None:
        ks.last_resort_key_id, ks.last_resort_key = up.last_resort.key_id, up.last_resort.public_key
    if up.signed_prekey is not None:
        _store_signed(session, device_id, up.signed_prekey, now)
    if up.one_time_prekeys is not None:
        session.execute(delete(OneTimePreKey).where(OneTimePreKey.device_id == device_id))
        session.add_all(OneTimePreKey(device_id=device_id, key_id=k.key_id, public_key=k.public_key)
                        for k in up.one_time_prekeys)
    session.flush()
    if new_identity:
        audit.record(session, actor=device_id, action="messaging.identity_key_set", subject=device_id,
                     details={"fingerprint": fingerprint(up.identity_key)}, now=now)
    return count(session, device_id)


def _store_signed(session: Session, device_id: str, key: SignedKey, now: dt.datetime) -> None:
    same = session.scalar(select(SignedPreKey).where(SignedPreKey.device_id == device_id,
                                                     SignedPreKey.key_id == key.key_id))
    if same is not None:
        if (same.public_key, same.signature) != (key.public_key, key.signature):
            raise InvalidKeys("signed_prekey.key_id is already used for another key", code="signed_prekey_id_reused")
        if same.superseded_at is None:
            return
        raise InvalidKeys("signed_prekey.key_id belongs to a superseded key", code="signed_prekey_id_reused")
    session.execute(update(SignedPreKey).where(SignedPreKey.device_id == device_id,
                                               SignedPreKey.superseded_at.is_(None)).values(superseded_at=now))
    session.add(SignedPreKey(device_id=device_id, key_id=key.key_id, public_key=key.public_key,
                             signature=key.signature, created_at=now))


def count(session: Session, device_id: str) -> int:
    """One-time prekeys the device has left on the server."""
    return session.scalar(select(func.count()).select_from(OneTimePreKey)
                          .where(OneTimePreKey.device_id == device_id)) or 0


def take_one_time_prekey(session: Session, device_id: str) -> PreKey | None:
    """Remove and return the oldest one-time prekey of `device_id`, or None if none is
    left. Atomic: concurrent callers never get the same key (PostgreSQL: a row locked by
    another transaction is skipped; SQLite: writers are serialized)."""
    oldest = (select(OneTimePreKey.id).where(OneTimePreKey.device_id == device_id)
              .order_by(OneTimePreKey.id).limit(1).with_for_update(skip_locked=True).scalar_subquery())
    row = session.execute(delete(OneTimePreKey).where(OneTimePreKey.id == oldest)
                          .returning(OneTimePreKey.key_id, OneTimePreKey.public_key)).first()
    return PreKey(row[0], row[1]) if row else None


def fetch_bundle(session: Session, requester_id: str, target_id: str, *, now: dt.datetime) -> Bundle:
    """A bundle for starting a session with `target_id`, consuming one one-time prekey.
    When none is left the bundle carries the last-resort key and the target gets a
    content-free 'replenish' push. Raises NotPermitted (requester may not message the
    target) or KeysNotFound (target never uploaded keys)."""
    if not may_message(session, requester_id, target_id, now):
        raise NotPermitted("you may only fetch keys of your contacts")
    ks = session.get(KeySet, target_id)
    signed = session.scalar(select(SignedPreKey).where(SignedPreKey.device_id == target_id,
                                                       SignedPreKey.superseded_at.is_(None)))
    if ks is None or signed is None:
        raise KeysNotFound("this device has not uploaded prekeys")
    otk = take_one_time_prekey(session, target_id)
    last_resort = otk is None
    if last_resort:
        otk = PreKey(ks.last_resort_key_id, ks.last_resort_key)
        notify(session, target_id, REPLENISH, now)
    return Bundle(target_id, ks.registration_id, ks.identity_key,
                  SignedKey(signed.key_id, signed.public_key, signed.signature), otk, last_resort)


def identity_key(session: Session, device_id: str) -> bytes | None:
    ks = session.get(KeySet, device_id)
    return ks.identity_key if ks else None


def purge_superseded(session: Session, now: dt.datetime, grace: dt.timedelta) -> int:
    """Delete signed prekeys superseded more than `grace` ago. Idempotent."""
    return session.execute(delete(SignedPreKey).where(SignedPreKey.superseded_at.is_not(None),
                                                      SignedPreKey.superseded_at <= now - grace)).rowcount or 0
