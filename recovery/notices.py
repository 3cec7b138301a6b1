"""Telling people about a recovery: content-free pushes (messaging.notify), system
messages in the recipient's queue (JSON the app reads: case id, requester's sealing key,
verification phrase — nothing secret), and mail to the account's recovery address.

System messages belong to messaging (messaging.system: sender `custos`, type 200, a
versioned JSON body per documented kind, returned with `system: true`).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from cosigner.vault import SealedSecret, open_secret
from recovery.context import RecoveryContext
from recovery.mailer import Mail
from recovery.model import RecoverySetup

from messaging.system import SYSTEM_SENDER, SYSTEM_TYPE as SYSTEM_MESSAGE_TYPE  # noqa: F401  (re-exported)


def push(session: Session, device_id: str, kind: str, now: dt.datetime) -> None:
    from messaging.notify import notify
    notify(session, device_id, kind, now)


def system_message(session: Session, ctx: RecoveryContext, device_id: str, payload: dict, now: dt.datetime, *,
                   replaces: dict | None = None) -> None:
    """A system message in the recipient's queue (messaging.system owns them: versioned,
    documented kinds, returned with `system: true`)."""
    from messaging.system import system_message as queue
    queue(session, device_id, payload, now, ttl=ctx.message_ttl, replaces=replaces)


def recovery_email(ctx: RecoveryContext, setup: RecoverySetup) -> str:
    return open_secret(ctx.keyring, SealedSecret(setup.email_kek_id, setup.email_wrapped_dek, setup.email_ciphertext),
                       setup.id + ":email").decode()


def mail(session: Session, ctx: RecoveryContext, setup: RecoverySetup, kind: str, subject: str, body: str,
         now: dt.datetime) -> str:
    return ctx.mailer.send(session, Mail(recovery_email(ctx, setup), subject, body), to_hash=setup.email_hash,
                           kind=kind, now=now)
