"""Mail behind a small interface. Every mail is first written to `recovery_mail_outbox`,
sealed (recipient and body, cosigner.vault envelope encryption) in the caller's
transaction, so it exists if and only if the change that caused it commits.

- `OutboxMailer` (embedded default): the mail stays in the outbox (state `outbox`) and a
  log line names its id and kind, never its content. Development tools and tests read it
  with `read_outbox()` (which needs the master key).
- `SmtpMailer` (SMTP_HOST set): the row is `pending` and a durable job `recovery.mail`
  sends it (at least once; the reconciler retries a lost or failed attempt).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session

from cosigner.vault import KeyWrapper, SealedSecret, open_secret, seal
from recovery.model import MailOutbox

log = logging.getLogger("custos.recovery.mail")


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str


class Mailer:
    """Interface: queue one mail in the caller's transaction; return the outbox id."""

    def send(self, session: Session, mail: Mail, *, to_hash: str, kind: str, now: dt.datetime) -> str:
        raise NotImplementedError


def _store(session: Session, keyring: KeyWrapper, mail: Mail, to_hash: str, kind: str, state: str,
           now: dt.datetime) -> MailOutbox:
    row_id = "mail_" + secrets.token_hex(12)
    sealed = seal(keyring, json.dumps({"to": mail.to, "subject": mail.subject, "body": mail.body}).encode(), row_id)
    row = MailOutbox(id=row_id, to_hash=to_hash, kind=kind, kek_id=sealed.kek_id, wrapped_dek=sealed.wrapped_dek,
                     ciphertext=sealed.ciphertext, state=state, attempts=0, created_at=now)
    session.add(row)
    session.flush()
    return row


class OutboxMailer(Mailer):
    def __init__(self, keyring: KeyWrapper):
        self.keyring = keyring

    def send(self, session, mail, *, to_hash, kind, now):
        row = _store(session, self.keyring, mail, to_hash, kind, "outbox", now)
        log.info("mail %s (%s) kept in the outbox", row.id, kind)
        return row.id


class SmtpMailer(Mailer):
    """`require_tls` (production): mail carries one-time codes, so it is never sent in the
    clear — a server that offers no STARTTLS (or a downgrade that strips it) fails the
    delivery, and the job retries. The server's certificate is verified."""

    def __init__(self, keyring: KeyWrapper, host: str, port: int, user: str | None, password: str | None,
                 sender: str, timeout: float = 20.0, require_tls: bool = False):
        self.keyring, self.host, self.port, self.require_tls = keyring, host, port, require_tls
        self.user, self._password, self.sender, self.timeout = user, password, sender, timeout

    def send(self, session, mail, *, to_hash, kind, now):
        from workers.jobs import schedule
        row = _store(session, self.keyring, mail, to_hash, kind, "pending", now)
        schedule(session, "recovery.mail", row.id, now)
        return row.id

    def deliver(self, session: Session, outbox_id: str, now: dt.datetime) -> bool:
        """Send one pending mail over SMTP (STARTTLS when offered). Idempotent for a sent
        row. Network errors propagate so the job is retried."""
        row = session.get(MailOutbox, outbox_id)
        if row is None or row.state == "sent":
            return False
        data = json.loads(open_secret(self.keyring, SealedSecret(row.kek_id, row.wrapped_dek, row.ciphertext),
                                      row.id))
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.sender, data["to"], data["subject"]
        msg.set_content(data["body"])
        row.attempts += 1
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                import ssl
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            elif self.require_tls:
                raise smtplib.SMTPNotSupportedError("the SMTP server offers no STARTTLS; nothing was sent")
            if self.user:
                smtp.login(self.user, self._password or "")
            smtp.send_message(msg)
        row.state, row.sent_at = "sent", now
        log.info("mail %s (%s) sent over SMTP", row.id, row.kind)
        return True


def mailer_from_settings(settings, keyring: KeyWrapper) -> Mailer:
    if settings.smtp_host:
        return SmtpMailer(keyring, settings.smtp_host, settings.smtp_port, settings.smtp_user,
                          settings.smtp_password, settings.smtp_from, require_tls=settings.production)
    return OutboxMailer(keyring)


def read_outbox(session: Session, keyring: KeyWrapper, to_hash: str, kind: str | None = None) -> list[Mail]:
    """The mails to one (hashed) address, oldest first, decrypted. For development tools
    and tests: needs the master key."""
    stmt = select(MailOutbox).where(MailOutbox.to_hash == to_hash).order_by(MailOutbox.created_at, MailOutbox.id)
    if kind:
        stmt = stmt.where(MailOutbox.kind == kind)
    out = []
    for row in session.scalars(stmt):
        d = json.loads(open_secret(keyring, SealedSecret(row.kek_id, row.wrapped_dek, row.ciphertext), row.id))
        out.append(Mail(d["to"], d["subject"], d["body"]))
    return out
