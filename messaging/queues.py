"""Store-and-forward queues, one per recipient device (Signal-Server semantics).

The server stores opaque ciphertext with a server-assigned guid and timestamp, returns a
device's queue oldest first in pages, deletes a message when the recipient acknowledges
it (idempotent), and expires unacknowledged messages after the TTL. Messages live in the
database only; a fetch without an ack returns the same guids again, so a crash between
fetch and ack never turns a message into a "new" one.
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import Integer, bindparam, delete, insert, select
from sqlalchemy.orm import Session

from messaging.encoding import b64decode
from messaging.errors import InvalidEnvelope, InvalidRequest, NotPermitted, RecipientNotFound, TooLarge
from messaging.limits import (MAX_ACK, MAX_ENVELOPES_PER_REQUEST, MAX_FETCH, MAX_GUID, MAX_MESSAGE_BYTES,
                             MAX_MESSAGE_TYPE)
from messaging.model import Message
from messaging.notify import SYNC, notify
from messaging.permissions import reachable

DEFAULT_TYPE = 1

# Hot statements, built once: per request only the parameters change (SQLAlchemy then
# reuses the compiled form). Table-level (Core) so no ORM unit of work runs for a message.
_MESSAGES = Message.__table__
_INSERT_MESSAGES = insert(_MESSAGES)
_QUEUE = (select(_MESSAGES.c.guid, _MESSAGES.c.sender_id, _MESSAGES.c.type, _MESSAGES.c.ciphertext,
                 _MESSAGES.c.server_timestamp)
          .where(_MESSAGES.c.recipient_id == bindparam("recipient"), _MESSAGES.c.expires_at > bindparam("now"))
          .order_by(_MESSAGES.c.seq).limit(bindparam("limit", type_=Integer)))
_ACK = delete(_MESSAGES).where(_MESSAGES.c.guid == bindparam("guid"), _MESSAGES.c.recipient_id == bindparam("recipient"))
_ACK_MANY = delete(_MESSAGES).where(_MESSAGES.c.recipient_id == bindparam("recipient"),
                                    _MESSAGES.c.guid.in_(bindparam("guids", expanding=True)))


@dataclass(frozen=True)
class Envelope:
    to: str
    ciphertext: bytes
    type: int = DEFAULT_TYPE


@dataclass(frozen=True)
class Sent:
    """A queued message as the sender sees it."""
    guid: str
    recipient_id: str
    server_timestamp: dt.datetime


@dataclass(frozen=True)
class Page:
    messages: list          # rows with guid, sender_id, type, ciphertext, server_timestamp
    more: bool


def parse_envelope(item) -> Envelope:
    """Validate one `{to, ciphertext, type?}` envelope. Raises InvalidEnvelope (never
    quoting the ciphertext). Pure."""
    if not isinstance(item, dict):
        raise InvalidEnvelope("each envelope must be an object")
    unknown = set(item) - {"to", "ciphertext", "type"}
    if unknown:
        raise InvalidEnvelope(f"unknown envelope fields: {', '.join(sorted(unknown))}")
    to = item.get("to")
    if not isinstance(to, str) or not 1 <= len(to) <= 40:
        raise InvalidEnvelope("`to` must be a device id")
    kind = item.get("type", DEFAULT_TYPE)
    if not isinstance(kind, int) or isinstance(kind, bool) or not 0 <= kind <= MAX_MESSAGE_TYPE:
        raise InvalidEnvelope(f"`type` must be an integer between 0 and {MAX_MESSAGE_TYPE}")
    raw = b64decode(item.get("ciphertext"), what="ciphertext", error=InvalidEnvelope, max_len=MAX_MESSAGE_BYTES)
    return Envelope(to, raw, kind)


def parse_envelopes(items) -> list[Envelope]:
    """Validate a non-empty list of at most MAX_ENVELOPES_PER_REQUEST envelopes. Pure."""
    if not isinstance(items, list) or not items:
        raise InvalidEnvelope("`messages` must be a non-empty list")
    if len(items) > MAX_ENVELOPES_PER_REQUEST:
        raise InvalidEnvelope(f"at most {MAX_ENVELOPES_PER_REQUEST} envelopes per request")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(parse_envelope(item))
        except TooLarge as exc:
            exc.details["field"] = f"messages[{i}].{exc.details['field']}"
            raise
    return out


def send(session: Session, sender_id: str, envelopes: list[Envelope], *, now: dt.datetime,
         ttl: dt.timedelta) -> list[Sent]:
    """Queue every envelope or none (one multi-row INSERT in the caller's transaction).
    Each recipient must be an active device the sender may message (RecipientNotFound /
    NotPermitted otherwise). Each recipient gets one content-free 'sync' push. Returns
    guid, recipient and server_timestamp of each, in order. Not idempotent: each call
    queues new messages."""
    recipients = sorted({e.to for e in envelopes})
    allowed = reachable(session, sender_id, recipients, now)
    for to in recipients:
        if to not in allowed:
            raise RecipientNotFound("no active device with this id", code="unknown_recipient")
        if not allowed[to]:
            raise NotPermitted("you may only message your contacts")
    expires = now + ttl
    rows = [{"guid": str(uuid.uuid4()), "recipient_id": e.to, "sender_id": sender_id, "type": e.type,
             "ciphertext": e.ciphertext, "server_timestamp": now, "expires_at": expires} for e in envelopes]
    session.execute(_INSERT_MESSAGES, rows)
    for to in recipients:
        notify(session, to, SYNC, now)
    return [Sent(r["guid"], r["recipient_id"], now) for r in rows]


def fetch(session: Session, recipient_id: str, *, now: dt.datetime, limit: int = MAX_FETCH) -> Page:
    """The oldest `limit` (1..MAX_FETCH) unexpired messages of the recipient's queue and
    whether more follow. Read-only: messages stay until acknowledged."""
    limit = max(1, min(MAX_FETCH, int(limit)))
    rows = list(session.execute(_QUEUE, {"recipient": recipient_id, "now": now, "limit": limit + 1}))
    return Page(rows[:limit], len(rows) > limit)


def ack(session: Session, recipient_id: str, guid: str) -> bool:
    """Delete a delivered message. Idempotent: an unknown guid (or someone else's) is not
    an error. Returns whether a message was deleted."""
    if not isinstance(guid, str) or len(guid) > MAX_GUID:
        return False
    return bool(session.execute(_ACK, {"guid": guid, "recipient": recipient_id}).rowcount)


def ack_many(session: Session, recipient_id: str, guids: list[str]) -> int:
    """Delete up to MAX_ACK delivered messages of the recipient's queue in one statement.
    Idempotent: unknown guids, someone else's and repeats are ignored. Returns how many
    were deleted now. Raises InvalidRequest for a malformed list (nothing deleted)."""
    if not isinstance(guids, list) or not guids or len(guids) > MAX_ACK or \
            any(not isinstance(g, str) or not 1 <= len(g) <= MAX_GUID for g in guids):
        raise InvalidRequest(f"`guids` must be 1 to {MAX_ACK} message guids", code="invalid_guids")
    return session.execute(_ACK_MANY, {"recipient": recipient_id, "guids": sorted(set(guids))}).rowcount or 0


def expire(session: Session, now: dt.datetime, batch: int = 10_000) -> int:
    """Delete messages whose TTL has passed; return how many. Idempotent."""
    total = 0
    while True:
        ids = list(session.scalars(select(Message.seq).where(Message.expires_at <= now).limit(batch)))
        if not ids:
            return total
        total += session.execute(delete(Message).where(Message.seq.in_(ids))).rowcount or 0
        if len(ids) < batch:
            return total


def pending_count(session: Session, recipient_id: str, now: dt.datetime) -> int:
    from sqlalchemy import func
    return session.scalar(select(func.count()).select_from(Message).where(
        Message.recipient_id == recipient_id, Message.expires_at > now)) or 0


