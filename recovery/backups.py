"""Encrypted backups (the Encrypted Recovery Store): client-encrypted blobs per
account, versions strictly increasing, SHA-256 checked on upload, the last KEEP_BACKUPS
kept. Readable by the account's owner device — after a completed recovery that is the
new device. Also the backup-reminder sweep run by beat."""
from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from audit import services as audit
from cosigner.model import Account, Spend
from recovery.errors import BackupConflict, BackupError, BackupNotFound, BackupQuotaExceeded, TooLarge
from recovery.limits import BACKUP_REMINDER_REPEAT, KEEP_BACKUPS, MAX_BACKUP_BYTES, MAX_BACKUPS_PER_HOUR
from recovery.model import Backup, RecoveryAccountState, RecoverySetup


def put(session: Session, account: Account, device_id: str, *, version, blob: bytes, sha256,
        now: dt.datetime) -> Backup:
    """Store version `version` (> every stored version). Raises BackupError (too large,
    digest mismatch, bad version) or BackupConflict (not above the latest). Idempotent
    for re-uploading the latest version with the same digest."""
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version < 2**62:
        raise BackupError("version must be a positive integer", code="invalid_version")
    if len(blob or b"") > MAX_BACKUP_BYTES:
        raise TooLarge(f"the blob must be at most {MAX_BACKUP_BYTES} bytes", field="blob", max_bytes=MAX_BACKUP_BYTES)
    if not blob:
        raise BackupError("the blob must not be empty", code="invalid_backup")
    digest = hashlib.sha256(blob).hexdigest()
    if not isinstance(sha256, str) or sha256.lower() != digest:
        raise BackupError("sha256 does not match the blob", code="digest_mismatch")
    session.get(Account, account.id, with_for_update=True)
    latest = session.scalar(select(Backup).where(Backup.account_id == account.id)
                            .order_by(Backup.version.desc()).limit(1))
    if latest is not None and latest.version == version and latest.sha256 == digest:
        return latest
    if latest is not None and version <= latest.version:
        raise BackupConflict(f"version must be above {latest.version}", details={"latest": latest.version})
    recent = list(session.scalars(select(Backup.created_at).where(
        Backup.account_id == account.id, Backup.created_at > now - dt.timedelta(hours=1)).order_by(Backup.created_at)))
    if len(recent) >= MAX_BACKUPS_PER_HOUR:     # KEEP_BACKUPS > MAX_BACKUPS_PER_HOUR: pruning never hides one
        wait = max(1, int((recent[0] + dt.timedelta(hours=1) - now).total_seconds()) + 1)
        raise BackupQuotaExceeded(f"at most {MAX_BACKUPS_PER_HOUR} new backup versions an hour",
                                  details={"limit": MAX_BACKUPS_PER_HOUR, "retry_after": wait})
    row = Backup(account_id=account.id, version=version, sha256=digest, size=len(blob), blob=blob,
                 device_id=device_id, created_at=now)
    session.add(row)
    session.flush()
    keep = list(session.scalars(select(Backup.id).where(Backup.account_id == account.id)
                                .order_by(Backup.version.desc()).limit(KEEP_BACKUPS)))
    session.execute(delete(Backup).where(Backup.account_id == account.id, Backup.id.not_in(keep)))
    audit.record(session, actor=device_id, action="recovery.backup_stored", subject=account.id,
                 details={"version": version, "size": len(blob), "sha256": digest}, now=now)
    return row


def get(session: Session, account: Account, version: int | None = None) -> Backup:
    """The latest backup, or a given version. Raises BackupNotFound."""
    stmt = select(Backup).where(Backup.account_id == account.id)
    stmt = stmt.where(Backup.version == version) if version is not None else stmt.order_by(Backup.version.desc())
    row = session.scalar(stmt.limit(1))
    if row is None:
        raise BackupNotFound("no such backup")
    return row


def remind(session: Session, balance_of, now: dt.datetime, *, balance_sat: int, activity: int,
           age: dt.timedelta) -> int:
    """Push `backup_reminder` to owners whose account has a balance above `balance_sat`,
    more than `activity` spends, or more than `age` since the last backup (or setup),
    at most once per BACKUP_REMINDER_REPEAT. `balance_of(account)` returns confirmed
    sats or None when unknown. Returns how many were reminded."""
    from recovery.notices import push
    count = 0
    for account in session.scalars(select(Account).where(Account.template != "watch_only")):
        state = session.get(RecoveryAccountState, account.id)
        if state is not None and state.last_backup_reminder_at and now - state.last_backup_reminder_at < \
                BACKUP_REMINDER_REPEAT:
            continue
        last = session.scalar(select(func.max(Backup.created_at)).where(Backup.account_id == account.id))
        setup_at = session.scalar(select(func.max(RecoverySetup.created_at))
                                  .where(RecoverySetup.account_id == account.id))
        since = max([t for t in (last, setup_at, account.created_at) if t is not None])
        spends_since = session.scalar(select(func.count()).select_from(Spend).where(
            Spend.account_id == account.id, Spend.created_at > since)) or 0
        reasons = []
        if now - since > age:
            reasons.append("elapsed")
        if spends_since > activity:
            reasons.append("activity")
        balance = balance_of(account)
        if balance is not None and balance > balance_sat and last is None:
            reasons.append("balance")
        if not reasons:
            continue
        push(session, account.owner_device_id, "backup_reminder", now)
        if state is None:
            state = RecoveryAccountState(account_id=account.id, mode="normal", updated_at=now)
            session.add(state)
        state.last_backup_reminder_at = now
        audit.record(session, actor="system", action="recovery.backup_reminded", subject=account.id,
                     details={"reasons": reasons}, now=now)
        count += 1
    return count
