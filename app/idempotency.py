"""`@idempotent`: honour the `Idempotency-Key` header on create endpoints.

The view's changes and the stored response commit in one transaction (the view's
`committing()` defers to this scope), so a retry after a crash either finds the stored
response or finds nothing changed. A concurrent duplicate loses on the primary key, is
rolled back, and answers with the winner's stored response."""
from __future__ import annotations

import functools
import hashlib

from flask import g, jsonify, request
from sqlalchemy.exc import IntegrityError

from app.errors import ApiError
from app.extensions import db
from devices.idempotency import MAX_KEY, IdempotencyRecord, find
from store.base import utcnow

HEADER = "Idempotency-Key"


def _replay(record: IdempotencyRecord, request_hash: str):
    if record.request_hash != request_hash:
        raise ApiError("this Idempotency-Key was used with a different request", status=422,
                       code="idempotency_key_reused")
    response = jsonify(record.body)
    response.status_code = record.status
    response.headers["Idempotent-Replayed"] = "true"
    return response


def idempotent(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not 1 <= len(key) <= MAX_KEY or not key.isprintable():
            raise ApiError(f"{HEADER} must be 1-{MAX_KEY} printable characters", code="invalid_idempotency_key")
        device_id = g.device.id
        request_hash = hashlib.sha256(request.method.encode() + request.path.encode() + b"\0" +
                                      request.get_data(cache=True)).hexdigest()
        existing = find(db.session, device_id, key)
        if existing is not None:
            return _replay(existing, request_hash)
        g.defer_commit = True
        try:
            response = view(*args, **kwargs)
            resp = response if hasattr(response, "status_code") else None
            if resp is not None and resp.status_code < 300:
                db.session.add(IdempotencyRecord(device_id=device_id, key=key, request_hash=request_hash,
                                                 status=resp.status_code, body=resp.get_json(),
                                                 created_at=utcnow()))
            db.session.commit()
            return response
        except IntegrityError:
            db.session.rollback()
            return _replay(find(db.session, device_id, key), request_hash)
        except BaseException:
            db.session.rollback()
            raise
        finally:
            g.defer_commit = False
    doc = getattr(wrapper, "_apidoc", None)
    if doc is not None:
        doc.setdefault("manual_doc", {}).setdefault("parameters", []).append(
            {"in": "header", "name": HEADER, "required": False, "schema": {"type": "string", "maxLength": MAX_KEY},
             "description": "Retry-safe create: the same key and body return the first response."})
    return wrapper
