"""The `@signed` view decorator: authenticates a device request with RFC 9421 signatures,
applies the per-address and per-device rate limits (one lookup, app.ratelimit) and the
optional mutual-TLS rule, and puts the device on `flask.g.device` (a read-only row,
devices.services.authenticate; its id also on `g.device_id`)."""
from __future__ import annotations

import functools
import time

from flask import g, request

from app.auth import httpsig
from app.auth.errors import AuthError, ClientCertRequired
from app.deps import deps
from app.errors import RateLimited
from app.extensions import db
from app.ratelimit import client_ip
from devices import keys
from devices import services as devices
from devices.errors import DeviceNotFound, DeviceRevoked
from store.base import utcnow


def request_view(req=None) -> httpsig.RequestView:
    """The current Flask request (or `req`) as the verifier sees it (raw path and query as
    sent)."""
    if req is None:
        req = request._get_current_object()
    env = req.environ
    raw = env.get("RAW_URI") or env.get("REQUEST_URI") or req.full_path
    path, _, query = raw.partition("?")
    if "://" in path:  # absolute-form request target
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    return httpsig.RequestView(
        method=req.method, scheme=req.scheme, authority=req.host,
        path=path, query=query, headers=httpsig.EnvironHeaders(env),
        body=req.get_data(cache=True))


def require_client_cert(req=None, settings=None) -> None:
    settings = settings or deps().settings
    if settings.require_client_cert:
        req = req if req is not None else request._get_current_object()
        if not req.headers.get(settings.client_cert_header, "").strip():
            raise ClientCertRequired("a verified client certificate is required")


# A signature is acceptable while `created` is within ±window of now, so from its first
# use it stays acceptable for at most 2·window; its nonce is kept that long plus a margin
# for clock differences between API processes (issue #14, L4). `created` is compared with
# the sub-second clock: `int(time.time())` kept a request acceptable up to 1 s longer.
NONCE_TTL_MARGIN = 60        # seconds
clock = time.time            # seconds since the epoch, float (tests move it)


def nonce_ttl(window: int) -> int:
    return 2 * window + NONCE_TTL_MARGIN


def verify_request(resolve_key, d=None, req=None) -> httpsig.Verified:
    """Verify the current request's signature with `resolve_key`; consume its nonce.
    `d`, `req`: the app's deps and the request when the caller holds them already."""
    d = d or deps()
    now = utcnow()
    window = d.settings.signature_window
    return httpsig.verify(
        request_view(req), now=clock(), window=window, resolve_key=resolve_key,
        consume_nonce=lambda keyid, nonce: d.nonces.use(keyid, nonce, nonce_ttl(window), now))


def _device_resolver(keyid: str):
    try:
        device = devices.authenticate(db.session, keyid)   # a read-only row; views needing the
        #                                                    ORM object use devices.get_active
    except DeviceNotFound:
        raise AuthError("no device with this keyid", code="unknown_device") from None
    except DeviceRevoked:
        raise AuthError("this device has been revoked", code="device_revoked") from None
    ctx = g._get_current_object()
    ctx.device, ctx.device_id = device, device.id
    key_type = device.key_type
    return keys.ALGORITHMS[key_type], functools.partial(keys.verify_signature, key_type, device.public_key)


def _refuse(retry: int, what: str) -> RateLimited:
    return RateLimited(f"too many requests from this {what}", headers={"Retry-After": str(retry)},
                       details={"retry_after": retry})


def check_device_rate(d=None, req=None) -> None:
    """Count the verified request against the address and the device limits (one lookup)."""
    limiter = (d or deps()).limiter
    if not limiter.enabled:
        return
    ip_retry, device_retry = limiter.check_ip_and_device(client_ip(req), g.device_id)
    if ip_retry is not None:
        raise _refuse(ip_retry, "address")
    if device_retry is not None:
        raise _refuse(device_retry, "device")


def signed(view):
    """Require a valid device signature. On failure: 401 with a specific code — or 429
    when the caller's address is over its limit (a failed attempt counts against it)."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        d, req = deps(), request._get_current_object()   # one lookup each for the whole check
        try:
            require_client_cert(req, d.settings)
            verify_request(_device_resolver, d, req)
        except AuthError:
            retry = d.limiter.check_ip(client_ip(req))
            if retry is not None:
                raise _refuse(retry, "address") from None
            raise
        check_device_rate(d, req)
        return view(*args, **kwargs)

    wrapper._custos_signed = True     # app.ratelimit: the address is counted here, not before
    doc = getattr(wrapper, "_apidoc", None) or {}
    doc.setdefault("manual_doc", {}).setdefault("security", [{"HttpSignature": []}])
    wrapper._apidoc = doc
    from app.openapi_errors import SIGNED, document_errors
    document_errors(wrapper, SIGNED)
    return wrapper
