"""Spend bookkeeping around the signing path: the reservation expiry job and the
owner's list of spends.

Each function runs in the caller's transaction and frees coins in that same
transaction as the state change, so no path leaves coins held by a finished spend.
"""
from __future__ import annotations

import base64
import datetime as dt
import json

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from audit import services as audit
from cosigner import reservations
from cosigner.context import CosignerContext
from cosigner.errors import InvalidDescriptor
from cosigner.model import HELD_STATES, SPEND_STATES, Account, Spend
from workers.jobs import schedule

MAX_PAGE = 100


def expire_reservation(session: Session, ctx: CosignerContext, spend_id: str, now: dt.datetime) -> str:
    """Job body (`spend.reservation_expiry`). A built spend whose reservation is past
    becomes `expired` and frees its coins; a held one (delay / approval) has its
    reservation renewed and the job comes back; a finished one frees whatever it still
    holds. Idempotent; returns what it did (expired | renewed | rescheduled | freed |
    nothing)."""
    spend = session.scalar(select(Spend).where(Spend.id == spend_id).with_for_update())
    if spend is None:
        return "nothing"
    if spend.state == "built":
        if spend.reserved_until is not None and spend.reserved_until > now:
            schedule(session, "spend.reservation_expiry", spend.id, spend.reserved_until)
            return "rescheduled"
        spend.state, spend.updated_at = "expired", now
        reservations.free(session, spend)
        account = session.get(Account, spend.account_id)
        audit.record(session, actor="system", action="spend.expired", subject=spend.id, details={}, now=now)
        ctx.notify(session, account.owner_device_id, "spend_expired", now)
        return "expired"
    if spend.state in HELD_STATES:
        reservations.keep(session, spend, now, ctx.reservation_ttl, strict=False)
        schedule(session, "spend.reservation_expiry", spend.id, now + dt.timedelta(seconds=ctx.reservation_ttl / 2))
        return "renewed"
    if reservations.release(session, spend.id):
        spend.reserved_until = None
        return "freed"
    return "nothing"


def _cursor(spend: Spend) -> str:
    raw = json.dumps([spend.created_at.isoformat(), spend.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        at, sid = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return dt.datetime.fromisoformat(at), str(sid)
    except Exception:
        raise InvalidDescriptor("cursor is not one this server gave", code="invalid_cursor") from None


def list_spends(session: Session, account: Account, *, states: list[str] | None = None, cursor: str | None = None,
                limit: int = 50) -> dict:
    """The account's spends, newest first: {"spends": [...], "next_cursor": str | None}.
    `states` filters (any of SPEND_STATES); `cursor` continues after the last page."""
    if states and any(s not in SPEND_STATES for s in states):
        raise InvalidDescriptor(f"state must be one of {', '.join(SPEND_STATES)}", code="invalid_state")
    limit = max(1, min(limit, MAX_PAGE))
    stmt = select(Spend).where(Spend.account_id == account.id)
    if states:
        stmt = stmt.where(Spend.state.in_(states))
    if cursor:
        at, sid = _parse_cursor(cursor)
        stmt = stmt.where(or_(Spend.created_at < at, and_(Spend.created_at == at, Spend.id < sid)))
    rows = list(session.scalars(stmt.order_by(Spend.created_at.desc(), Spend.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"spends": rows, "next_cursor": _cursor(rows[-1]) if more and rows else None}
