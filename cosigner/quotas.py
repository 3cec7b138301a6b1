"""Per-device quotas on accounts (issue #14, M5: every account costs the chain side
work — a watch-only wallet, scripts to follow — so one device must not create them
without bound), and on restores: an account with a `birthday` in the past makes the
chain side rescan from that time (from 2009 on mainnet: the whole chain), so a device
may start at most MAX_RESTORES_PER_DAY of them a day. The check serializes a device's creations with a no-op UPDATE of its
row (a row lock on PostgreSQL, the write lock on SQLite), so concurrent creates cannot
together pass the limit."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cosigner.errors import CosignerError
from cosigner.model import Account
from devices.model import Device


MAX_RESTORES_PER_DAY = 3                 # accounts with a past birthday per device per 24 h
RESTORE_AFTER = dt.timedelta(days=1)     # a birthday older than this before now is a restore


class QuotaExceeded(CosignerError):
    code = "quota_exceeded"


class RestoresExceeded(QuotaExceeded):
    """Answered 429 with retry_after: the quota frees itself as time passes."""
    code = "restore_quota_exceeded"


def check_accounts_per_device(session: Session, device_id: str, limit: int) -> None:
    """Raise QuotaExceeded (`account_quota_exceeded`, details `{limit}`) when the device
    already owns `limit` accounts. Call inside the creating transaction."""
    session.execute(update(Device).where(Device.id == device_id).values(id=Device.id))
    owned = session.scalar(select(func.count()).select_from(Account).where(Account.owner_device_id == device_id))
    if owned >= limit:
        raise QuotaExceeded(f"a device may own at most {limit} accounts", code="account_quota_exceeded",
                            details={"limit": limit})


def check_restores(session: Session, device_id: str, birthday: int | None, now: dt.datetime) -> None:
    """Raise RestoresExceeded (`restore_quota_exceeded`, details `{limit, retry_after}`)
    when `birthday` (Unix time) asks for a rescan and the device already started
    MAX_RESTORES_PER_DAY restores in the last 24 h. Call after check_accounts_per_device
    (which serializes the device's creations)."""
    if birthday is None or birthday >= (now - RESTORE_AFTER).timestamp():
        return
    rows = session.execute(select(Account.created_at, Account.birthday).where(
        Account.owner_device_id == device_id, Account.created_at > now - dt.timedelta(days=1),
        Account.birthday.is_not(None)))
    restores = [created for created, born in rows if born < (created - RESTORE_AFTER).timestamp()]
    if len(restores) >= MAX_RESTORES_PER_DAY:
        wait = max(1, int((min(restores) + dt.timedelta(days=1) - now).total_seconds()) + 1)
        raise RestoresExceeded(f"at most {MAX_RESTORES_PER_DAY} accounts with a past birthday (a rescan) a day",
                               details={"limit": MAX_RESTORES_PER_DAY, "retry_after": wait})
