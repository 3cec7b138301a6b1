"""System messages: server-authored notices in a device's queue (the recovery flow's
"a recovery started", custody challenges, …). Messaging owns them; other packages call
`system_message`.

They are queue rows like any other (FIFO, acknowledged with DELETE, same TTL), from the
sender `custos` with type SYSTEM_TYPE, whose stored body is a JSON object with `v`
(SYSTEM_VERSION) and `type` (one of KINDS). Nothing in them is secret and the server is
their author, so there is nothing to end-to-end encrypt: `GET /v1/messages` returns them
with `system: true` and the object itself as `body` — no base64 `ciphertext`.

KINDS documents each kind's fields (README and docs/PROTOCOL.md repeat the table);
`system_message` refuses a kind or field it does not document.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

SYSTEM_SENDER = "custos"
SYSTEM_TYPE = 200
SYSTEM_VERSION = 1

# kind → {field: description}; every body also has `v` and `type`.
KINDS: dict[str, dict[str, str]] = {
    "recovery_started": {
        "case_id": "the recovery case", "role": "owner | holder", "holder_id": "your holder slot (holders only)",
        "sealing_key": "base64 X25519 key of the requesting phone (holders seal their share to it)",
        "verification_phrase": "4 BIP39 words to compare with the requester by phone",
        "delay_ends_at": "ISO 8601: the operator's share is released after this unless cancelled"},
    "recovery_withdrawn": {"case_id": "the recovery case the requester withdrew",
                           "holder_id": "your holder slot"},
    "inheritance_named": {"account_id": "the account whose owner named you a beneficiary (nothing else is told)"},
    "inheritance_claim_started": {
        "claim_id": "the inheritance claim", "account_id": "the account claimed", "role": "owner | holder",
        "beneficiary_device_id": "the beneficiary who claims",
        "wait_ends_at": "ISO 8601: the operator's share is released after this unless the owner cancels"},
    "inheritance_claim_reminder": {"claim_id": "the inheritance claim", "account_id": "the account claimed",
                                   "role": "owner | holder", "wait_ends_at": "ISO 8601: end of the waiting period"},
    "inheritance_claim_released": {"claim_id": "the inheritance claim", "account_id": "the account claimed",
                                   "role": "owner | holder"},
    "inheritance_released": {"claim_id": "your claim: the operator's share is released to your sealing key",
                             "account_id": "the account claimed"},
    "inheritance_declined": {"claim_id": "your claim, declined (cancelled)", "account_id": "the account claimed"},
    "custody_challenge": {"holder_id": "your holder slot",
                          "challenge": "base64, 32 bytes: sign it with the share's custody key "
                                       "(POST /v1/custody/challenges/{holder_id})"},
}


class UnknownSystemMessage(ValueError):
    """A kind or field KINDS does not document (a programming error, not bad input)."""


def body_of(payload: dict) -> dict:
    """The stored body: `v`, `type` and the documented fields. Raises UnknownSystemMessage."""
    kind = payload.get("type")
    fields = KINDS.get(kind)
    if fields is None:
        raise UnknownSystemMessage(f"undocumented system message type {kind!r}")
    extra = set(payload) - set(fields) - {"type"}
    if extra:
        raise UnknownSystemMessage(f"undocumented fields for {kind}: {', '.join(sorted(extra))}")
    return {"v": SYSTEM_VERSION, **payload}


def is_system(sender_id: str, kind: int) -> bool:
    return sender_id == SYSTEM_SENDER and kind == SYSTEM_TYPE


def decode(raw: bytes) -> dict:
    """A stored system body as an object (an unreadable one as `{"v": 0, "type": "unreadable"}`)."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {"v": 0, "type": "unreadable"}


def system_message(session: Session, device_id: str, payload: dict, now: dt.datetime, *, ttl: dt.timedelta,
                   replaces: dict | None = None) -> str:
    """Queue a system message for `device_id` (in the caller's transaction) and wake it
    with a content-free push. With `replaces`, the device's undelivered system messages
    whose body has all those key/values are deleted first — a new custody challenge
    replaces the unanswered one instead of piling up. Returns the new message's guid."""
    from messaging.model import Message
    from messaging.notify import SYNC, notify
    body = body_of(payload)
    if replaces:
        for old in session.scalars(select(Message).where(Message.recipient_id == device_id,
                                                         Message.sender_id == SYSTEM_SENDER,
                                                         Message.type == SYSTEM_TYPE)):
            stored = decode(old.ciphertext)
            if all(stored.get(k) == v for k, v in replaces.items()):
                session.delete(old)
    guid = str(uuid.uuid4())
    session.add(Message(guid=guid, recipient_id=device_id, sender_id=SYSTEM_SENDER, type=SYSTEM_TYPE,
                        ciphertext=json.dumps(body, sort_keys=True).encode(), server_timestamp=now,
                        expires_at=now + ttl))
    session.flush()
    notify(session, device_id, SYNC, now)
    return guid
