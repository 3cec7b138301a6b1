"""/v1/devices: register a device (proof of possession), read it, set its push token,
revoke it."""
from __future__ import annotations

from flask import g
from flask_smorest import Blueprint

from app.auth.device import require_client_cert, signed, verify_request
from app.auth.errors import SignatureInvalid
from app.deps import deps
from app.errors import RateLimited
from app.extensions import db
from app.ratelimit import client_ip, hit
from app.schemas import DeviceRegistrationSchema, DeviceSchema, PushTokenSchema
from app.transaction import committing
from devices import keys
from devices import services as devices
from store.base import utcnow

bp = Blueprint("devices", __name__, url_prefix="/v1/devices", description="Devices and their keys")


@bp.route("", methods=["POST"])
@bp.arguments(DeviceRegistrationSchema)
@bp.response(201, DeviceSchema)
@bp.alt_response(200, schema=DeviceSchema, description="This key is already registered")
def register(body):
    """Register a device. The request must be signed (RFC 9421) by the key being
    registered, with `keyid` = base64url(SHA-256(public key)). Idempotent per key."""
    require_client_cert()
    d = deps()
    retry = hit(d.limiter, d.settings.ratelimit_register, "register", client_ip())
    if retry is not None:
        raise RateLimited("too many registrations from this address", headers={"Retry-After": str(retry)})
    public_key = keys.parse_public_key(body["key_type"], body["public_key"])
    fingerprint = keys.fingerprint(public_key)

    def resolve(keyid):
        if keyid != fingerprint:
            raise SignatureInvalid("keyid must be the fingerprint of the key being registered")
        return keys.ALGORITHMS[body["key_type"]], \
            lambda sig, msg: keys.verify_signature(body["key_type"], public_key, sig, msg)

    verify_request(resolve)
    with committing():
        device, created = devices.register(
            db.session, key_type=body["key_type"], public_key=public_key, platform=body["platform"],
            push_token=body["push_token"], now=utcnow())
    return device, (201 if created else 200)


@bp.route("/me", methods=["GET"])
@signed
@bp.response(200, DeviceSchema)
def whoami():
    """The calling device."""
    return g.device


@bp.route("/me/push-token", methods=["PUT"])
@signed
@bp.arguments(PushTokenSchema)
@bp.response(200, DeviceSchema)
def set_push_token(body):
    """Set or clear (null) the calling device's push token. Idempotent."""
    with committing():
        return devices.set_push_token(db.session, g.device.id, body["push_token"], now=utcnow())


@bp.route("/me", methods=["DELETE"])
@signed
@bp.response(204)
def revoke():
    """Revoke the calling device. Its key can never sign again."""
    with committing():
        devices.revoke(db.session, g.device.id, now=utcnow())
