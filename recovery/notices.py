"""Telling people about a recovery: content-free pushes (messaging.notify), system
messages in the recipient's queue (JSON the app reads: case id, requester's sealing key,
verification phrase — nothing secret), and mail to the account's recovery address.

System messages are queue rows from sender `custos` with type SYSTEM_MESSAGE_TYPE and a
plaintext JSON body (the server is their author, so there is nothing to end-to-end
encrypt). Clients tell them apart by sender and type.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid

from sqlalchemy.orm import Session

from cosigner.vault import SealedSecret, open_secret
from recovery.context import RecoveryContext
from recovery.mailer import Mail
from recovery.model import RecoverySetup

SYSTEM_SENDER = "custos"
SYSTEM_MESSAGE_TYPE = 200


def push(session: Session, device_id: str, kind: str, now: dt.datetime) -> None:
    from messaging.notify import notify
    notify(session, device_id, kind, now)


def system_message(session: Session, ctx: RecoveryContext, device_id: str, payload: dict, now: dt.datetime, *,
                   replaces: dict | None = None) -> None:
    """Queue a server-authored message for `device_id` and wake it with a push. With
    `replaces`, undelivered system messages of the device whose payload has all those
    key/values are deleted first (a new custody challenge replaces the unanswered one)."""
    from messaging.model import Message
    from messaging.notify import SYNC
    if replaces:
        from sqlalchemy import select
        for old in session.scalars(select(Message).where(Message.recipient_id == device_id,
                                                         Message.sender_id == SYSTEM_SENDER,
                                                         Message.type == SYSTEM_MESSAGE_TYPE)):
            try:
                body = json.loads(old.ciphertext)
            except ValueError:
                continue
            if isinstance(body, dict) and all(body.get(k) == v for k, v in replaces.items()):
                session.delete(old)
    session.add(Message(guid=str(uuid.uuid4()), recipient_id=device_id, sender_id=SYSTEM_SENDER,
                        type=SYSTEM_MESSAGE_TYPE, ciphertext=json.dumps(payload, sort_keys=True).encode(),
                        server_timestamp=now, expires_at=now + ctx.message_ttl))
    session.flush()
    push(session, device_id, SYNC, now)


def recovery_email(ctx: RecoveryContext, setup: RecoverySetup) -> str:
    return open_secret(ctx.keyring, SealedSecret(setup.email_kek_id, setup.email_wrapped_dek, setup.email_ciphertext),
                       setup.id + ":email").decode()


def mail(session: Session, ctx: RecoveryContext, setup: RecoverySetup, kind: str, subject: str, body: str,
         now: dt.datetime) -> str:
    return ctx.mailer.send(session, Mail(recovery_email(ctx, setup), subject, body), to_hash=setup.email_hash,
                           kind=kind, now=now)
