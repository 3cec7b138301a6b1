"""Read models for staff screens (API and console share them): account summaries without
keys or shares, spends awaiting staff, audit-log queries with the chain's verdict, the
development outboxes. Read-only; values are JSON-ready (ISO 8601 times)."""
from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.model import AuditEvent
from audit.services import verify
from cosigner import policy_service
from cosigner.model import Account, PolicyChange, Spend

MAX_AUDIT_PAGE = 500


def iso(value):
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: iso(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [iso(v) for v in value]
    return value


def find_accounts(session: Session, *, account_id: str | None = None, device_id: str | None = None,
                  limit: int = 50) -> list[Account]:
    stmt = select(Account)
    if account_id:
        stmt = stmt.where(Account.id == account_id)
    if device_id:
        stmt = stmt.where(Account.owner_device_id == device_id)
    return list(session.scalars(stmt.order_by(Account.created_at.desc()).limit(limit)))


def account_brief(a: Account) -> dict:
    return {"account_id": a.id, "name": a.name, "network": a.network, "template": a.template,
            "owner_device_id": a.owner_device_id, "created_at": iso(a.created_at),
            "imported": a.imported_at is not None}


def spend_brief(s: Spend) -> dict:
    return {"spend_id": s.id, "account_id": s.account_id, "state": s.state, "external_sat": s.external_sat,
            "fee_sat": s.fee_sat, "fee_rate": s.fee_rate, "txid": s.txid,
            "outputs": [{k: o.get(k) for k in ("address", "amount_sat", "change") if k in o} for o in s.outputs],
            "decision": (s.decision or {}).get("action"),
            "reasons": [r.get("rule") for r in (s.decision or {}).get("reasons", []) if isinstance(r, dict)],
            "approval_expires_at": iso(s.approval_expires_at), "created_at": iso(s.created_at)}


def account_detail(session: Session, account: Account) -> dict:
    """What staff may see of an account: identity, policy rules and version, pending
    changes, recent spends, recovery cases, a pending recovery setup replacement. Never
    descriptors, keys, shares or addresses."""
    policy = policy_service.summary(session, account)
    rules = policy["rules"]
    changes = session.scalars(select(PolicyChange).where(PolicyChange.account_id == account.id)
                              .order_by(PolicyChange.created_at.desc()).limit(20)).all()
    spends = session.scalars(select(Spend).where(Spend.account_id == account.id)
                             .order_by(Spend.created_at.desc()).limit(20)).all()
    return {**account_brief(account),
            "frozen": bool(rules.get("frozen")), "staff_frozen": bool(rules.get("staff_frozen")),
            "policy": {"version": policy["version"], "rules": rules},
            "pending_changes": [{"change_id": c.id, "state": c.state, "rules": c.rules,
                                 "effective_at": iso(c.effective_at), "created_by": c.created_by,
                                 "created_at": iso(c.created_at)} for c in changes if c.state == "pending"],
            "spends": [spend_brief(s) for s in spends],
            "recovery_cases": recovery_cases_of(session, account.id),
            "recovery_setup_change": recovery_setup_change_of(session, account.id)}


def recovery_setup_change_of(session: Session, account_id: str) -> dict | None:
    """A pending replacement of the account's recovery setup (counts and times only)."""
    try:
        from recovery.setup_changes import pending
    except ImportError:          # recovery not installed
        return None
    c = pending(session, account_id)
    return None if c is None else {"change_id": c.id, "effective_at": iso(c.effective_at),
                                   "created_by": c.created_by, "created_at": iso(c.created_at),
                                   "holders": c.summary["holders"], "email_changed": c.summary["email_changed"]}


def recovery_cases_of(session: Session, account_id: str) -> list[dict]:
    try:
        from recovery.model import RecoveryCase
    except ImportError:          # recovery not installed
        return []
    rows = session.scalars(select(RecoveryCase).where(RecoveryCase.account_id == account_id)
                           .order_by(RecoveryCase.created_at.desc()).limit(20)).all()
    return [{"case_id": c.id, "state": c.state, "created_at": iso(c.created_at)} for c in rows]


def awaiting_staff(session: Session) -> list[Spend]:
    """Spends awaiting approval, oldest first."""
    return list(session.scalars(select(Spend).where(Spend.state == "awaiting_approval").order_by(Spend.created_at)))


def audit_events(session: Session, *, subject: str | None = None, actor: str | None = None,
                 action: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
                 before_seq: int | None = None, limit: int = 100) -> list[AuditEvent]:
    """Newest first. `action` matches a prefix (`staff.` finds every staff event)."""
    stmt = select(AuditEvent)
    if subject:
        stmt = stmt.where(AuditEvent.subject == subject)
    if actor:
        stmt = stmt.where(AuditEvent.actor == actor)
    if action:
        stmt = stmt.where(AuditEvent.action.startswith(action, autoescape=True))
    if since:
        stmt = stmt.where(AuditEvent.at >= since)
    if until:
        stmt = stmt.where(AuditEvent.at < until)
    if before_seq:
        stmt = stmt.where(AuditEvent.seq < before_seq)
    return list(session.scalars(stmt.order_by(AuditEvent.seq.desc()).limit(max(1, min(limit, MAX_AUDIT_PAGE)))))


def audit_out(e: AuditEvent, broken_seq: int | None = None) -> dict:
    return {"seq": e.seq, "at": iso(e.at), "actor": e.actor, "action": e.action, "subject": e.subject,
            "details": e.details, "hash": e.hash, "prev_hash": e.prev_hash,
            "broken": broken_seq is not None and e.seq == broken_seq,
            "after_break": broken_seq is not None and e.seq > broken_seq}


def chain_report(session: Session) -> dict:
    r = verify(session)
    return {"ok": r.ok, "checked": r.checked, "first_broken_seq": r.first_broken_seq, "reason": r.reason}


def push_outbox(session: Session, limit: int = 100, *, device_id: str | None = None, kind: str | None = None,
                since: dt.datetime | None = None) -> list[dict]:
    """Push notifications newest first, optionally for one device, of one kind, since a time."""
    from messaging.model import Notification
    stmt = select(Notification)
    if device_id:
        stmt = stmt.where(Notification.device_id == device_id)
    if kind:
        stmt = stmt.where(Notification.kind == kind)
    if since:
        stmt = stmt.where(Notification.created_at >= since)
    rows = session.scalars(stmt.order_by(Notification.created_at.desc()).limit(limit))
    return [{"id": n.id, "device_id": n.device_id, "kind": n.kind, "state": n.state, "attempts": n.attempts,
             "channel": n.channel, "last_error": n.last_error, "created_at": iso(n.created_at),
             "delivered_at": iso(n.delivered_at)} for n in rows]


def mail_outbox(session: Session, keyring, limit: int = 100, *, contents: bool = False, to_hash: str | None = None,
                kind: str | None = None, since: dt.datetime | None = None, case_id: str | None = None) -> list[dict]:
    """The mail outbox, newest first, optionally to one (hashed) address, of one kind,
    since a time, or about one recovery case; with `contents` (development only)
    decrypted, with the case the mail names (`case_id`)."""
    import re
    from cosigner.vault import SealedSecret, open_secret
    from recovery.model import MailOutbox
    stmt = select(MailOutbox)
    if to_hash:
        stmt = stmt.where(MailOutbox.to_hash == to_hash)
    if kind:
        stmt = stmt.where(MailOutbox.kind == kind)
    if since:
        stmt = stmt.where(MailOutbox.created_at >= since)
    out = []
    for row in session.scalars(stmt.order_by(MailOutbox.created_at.desc()).limit(limit if not case_id else 1000)):
        item = {"id": row.id, "kind": row.kind, "state": row.state, "attempts": row.attempts,
                "last_error": row.last_error, "to_hash": row.to_hash[:12], "created_at": iso(row.created_at)}
        if contents:
            try:
                mail = json.loads(open_secret(keyring, SealedSecret(row.kek_id, row.wrapped_dek, row.ciphertext),
                                              row.id))
                item.update(to=mail.get("to"), subject=mail.get("subject"), body=mail.get("body"))
                named = re.search(r"Recovery case: (rcase_[0-9a-f]+)", item["body"] or "")
                item["case_id"] = named.group(1) if named else None
            except Exception:  # a row sealed under a key we no longer hold
                item["unreadable"] = True
        if case_id and item.get("case_id") != case_id:
            continue
        out.append(item)
    return out[:limit]
