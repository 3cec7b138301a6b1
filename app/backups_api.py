"""/v1/accounts/{id}/backups: client-encrypted backup blobs (≤ 1 MiB decoded), versioned,
last 10 kept; readable by the account's owner device (the new device after a recovery)."""
from __future__ import annotations

import base64
import binascii
import functools

from flask import g, request
from flask_smorest import Blueprint

from app.auth.device import signed
from app.extensions import db
from app.recovery_api import iso
from app.recovery_schemas import BackupSchema
from app.schemas import MAX_SAFE_INT
from app.transaction import committing
from app import response_schemas as rs
from app.openapi_errors import errors
from cosigner import accounts
from recovery import backups
from recovery.errors import BackupError
from recovery.limits import MAX_BACKUP_BYTES
from store.base import utcnow

bp = Blueprint("backups", __name__, url_prefix="/v1", description="Encrypted backups")
BODY_LIMIT = (MAX_BACKUP_BYTES + 2) // 3 * 4 + 4096     # base64 blob + the JSON around it


def large_body(view):
    """Allow a body up to BODY_LIMIT on this endpoint (the app-wide MAX_CONTENT_LENGTH is 1 MiB)."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        request.max_content_length = max(BODY_LIMIT, request.max_content_length or 0)
        return view(*args, **kwargs)
    wrapper.max_body = BODY_LIMIT     # read by app.input_guard before the body is parsed
    return wrapper


def backup_out(row, with_blob: bool) -> dict:
    out = {"account_id": row.account_id, "version": row.version, "sha256": row.sha256, "size": row.size,
           "created_at": row.created_at}
    if with_blob:
        out["blob"] = base64.b64encode(row.blob).decode()
    return iso(out)


@bp.route("/accounts/<account_id>/backups", methods=["PUT"])
@errors({400: "`error.code`: invalid_backup, digest_mismatch, invalid_version.",
         409: "`error.code`: backup_version_conflict (`details.latest`).",
         413: "The body is over the size limit (`payload_too_large`).",
         422: "`error.code`: validation_error (`details.field`, `details.max_bytes` for a blob over 1 MiB).",
         429: "`error.code`: backup_quota_exceeded (6 new versions an hour, `details.retry_after`), rate_limited."})
@large_body
@signed
@bp.arguments(BackupSchema)
@bp.response(201, rs.BackupOutSchema)
def put_backup(body, account_id):
    """Store a new version (strictly above the latest; re-sending the latest is a no-op)."""
    try:
        blob = base64.b64decode(body["blob"], validate=True)
    except (ValueError, binascii.Error):
        raise BackupError("blob must be base64", code="invalid_backup") from None
    with committing():
        account = accounts.get_owned(db.session, account_id, g.device.id)
        row = backups.put(db.session, account, g.device.id, version=body["version"], blob=blob,
                          sha256=body["sha256"], now=utcnow())
        return backup_out(row, with_blob=False)


@bp.route("/accounts/<account_id>/backups/latest", methods=["GET"])
@signed
@bp.response(200, rs.BackupOutSchema)
def latest_backup(account_id):
    account = accounts.get_owned(db.session, account_id, g.device.id)
    return backup_out(backups.get(db.session, account), with_blob=True)


@bp.route(f"/accounts/<account_id>/backups/<int(max={MAX_SAFE_INT}):version>", methods=["GET"])
@signed
@bp.response(200, rs.BackupOutSchema)
def backup_version(account_id, version):
    account = accounts.get_owned(db.session, account_id, g.device.id)
    return backup_out(backups.get(db.session, account, version), with_blob=True)
