"""Per-device quotas on accounts (issue #14, M5: every account costs the chain side
work — a watch-only wallet, scripts to follow — so one device must not create them
without bound). The check serializes a device's creations with a no-op UPDATE of its
row (a row lock on PostgreSQL, the write lock on SQLite), so concurrent creates cannot
together pass the limit."""
from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cosigner.errors import CosignerError
from cosigner.model import Account
from devices.model import Device


class QuotaExceeded(CosignerError):
    code = "quota_exceeded"


def check_accounts_per_device(session: Session, device_id: str, limit: int) -> None:
    """Raise QuotaExceeded (`account_quota_exceeded`, details `{limit}`) when the device
    already owns `limit` accounts. Call inside the creating transaction."""
    session.execute(update(Device).where(Device.id == device_id).values(id=Device.id))
    owned = session.scalar(select(func.count()).select_from(Account).where(Account.owner_device_id == device_id))
    if owned >= limit:
        raise QuotaExceeded(f"a device may own at most {limit} accounts", code="account_quota_exceeded",
                            details={"limit": limit})
