"""/v1/keys: the Signal prekey directory (X3DH)."""
from __future__ import annotations

from flask import g
from flask_smorest import Blueprint

from app.auth.device import signed
from app.extensions import db
from app.messaging_api import limit
from app.messaging_schemas import BundleSchema, KeyCountSchema, KeyUploadSchema
from app.transaction import committing
from messaging import prekeys
from messaging.encoding import b64encode
from store.base import utcnow

bp = Blueprint("keys", __name__, url_prefix="/v1/keys", description="Signal prekey directory")


@bp.route("", methods=["PUT"])
@signed
@bp.arguments(KeyUploadSchema)
@bp.response(200, KeyCountSchema)
def upload(body):
    """Upload the identity key, a signed prekey (its signature is verified against the
    identity key), up to 100 one-time prekeys (replacing the stored pool) and a
    last-resort key. After the first upload each part is optional. Returns the number of
    one-time prekeys stored."""
    up = prekeys.parse_upload(body)
    with committing():
        return {"count": prekeys.upload(db.session, g.device.id, up, now=utcnow())}


@bp.route("/count", methods=["GET"])
@signed
@bp.response(200, KeyCountSchema)
def count():
    """How many one-time prekeys the caller has left on the server."""
    return {"count": prekeys.count(db.session, g.device.id)}


@bp.route("/<device_id>", methods=["GET"])
@signed
@bp.response(200, BundleSchema)
def bundle(device_id):
    """A prekey bundle for `device_id` (a contact): identity key, signed prekey and one
    one-time prekey, which is consumed. When none are left the bundle carries the
    last-resort key (`last_resort: true`) and the owner is asked to replenish.
    Rate-limited per requester and per target."""
    limit("ratelimit_prekey_fetch", "prekey fetches", "prekeys-by", g.device.id)
    limit("ratelimit_prekey_target", "prekey fetches for this device", "prekeys-of", device_id[:40])
    with committing():
        b = prekeys.fetch_bundle(db.session, g.device.id, device_id, now=utcnow())
    return {"device_id": b.device_id, "registration_id": b.registration_id,
            "identity_key": b64encode(b.identity_key),
            "signed_prekey": {"key_id": b.signed_prekey.key_id, "public_key": b64encode(b.signed_prekey.public_key),
                              "signature": b64encode(b.signed_prekey.signature)},
            "one_time_prekey": {"key_id": b.one_time_prekey.key_id,
                                "public_key": b64encode(b.one_time_prekey.public_key)},
            "last_resort": b.last_resort}
