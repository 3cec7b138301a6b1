"""The `@signed` view decorator: authenticates a device request with RFC 9421 signatures,
applies the per-device rate limit and the optional mutual-TLS rule, and puts the device
on `flask.g.device`."""
from __future__ import annotations

import functools
import time

from flask import g, request

from app.auth import httpsig
from app.auth.errors import AuthError, ClientCertRequired
from app.deps import deps
from app.errors import RateLimited
from app.extensions import db
from app.ratelimit import hit
from devices import keys
from devices import services as devices
from devices.errors import DeviceNotFound, DeviceRevoked
from store.base import utcnow


def request_view() -> httpsig.RequestView:
    """The current Flask request as the verifier sees it (raw path and query as sent)."""
    env = request.environ
    raw = env.get("RAW_URI") or env.get("REQUEST_URI") or request.full_path
    path, _, query = raw.partition("?")
    if "://" in path:  # absolute-form request target
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    return httpsig.RequestView(
        method=request.method, scheme=request.scheme, authority=request.host,
        path=path, query=query, headers=httpsig.make_headers(request.headers.items()),
        body=request.get_data(cache=True))


def require_client_cert() -> None:
    settings = deps().settings
    if settings.require_client_cert and not request.headers.get(settings.client_cert_header, "").strip():
        raise ClientCertRequired("a verified client certificate is required")


# A signature is acceptable while `created` is within ±window of now, so from its first
# use it stays acceptable for at most 2·window; its nonce is kept that long plus a margin
# for clock differences between API processes (issue #14, L4). `created` is compared with
# the sub-second clock: `int(time.time())` kept a request acceptable up to 1 s longer.
NONCE_TTL_MARGIN = 60        # seconds
clock = time.time            # seconds since the epoch, float (tests move it)


def nonce_ttl(window: int) -> int:
    return 2 * window + NONCE_TTL_MARGIN


def verify_request(resolve_key) -> httpsig.Verified:
    """Verify the current request's signature with `resolve_key`; consume its nonce."""
    d = deps()
    now = utcnow()
    window = d.settings.signature_window
    return httpsig.verify(
        request_view(), now=clock(), window=window, resolve_key=resolve_key,
        consume_nonce=lambda keyid, nonce: d.nonces.use(keyid, nonce, nonce_ttl(window), now))


def _device_resolver(keyid: str):
    try:
        device = devices.get_active(db.session, keyid)
    except DeviceNotFound:
        raise AuthError("no device with this keyid", code="unknown_device") from None
    except DeviceRevoked:
        raise AuthError("this device has been revoked", code="device_revoked") from None
    g.device = device
    return keys.ALGORITHMS[device.key_type], functools.partial(
        keys.verify_signature, device.key_type, device.public_key)


def check_device_rate() -> None:
    d = deps()
    retry = hit(d.limiter, d.settings.ratelimit_device, "device", g.device.id)
    if retry is not None:
        raise RateLimited("too many requests from this device", headers={"Retry-After": str(retry)},
                          details={"retry_after": retry})


def signed(view):
    """Require a valid device signature. On failure: 401 with a specific code."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        require_client_cert()
        verify_request(_device_resolver)
        check_device_rate()
        return view(*args, **kwargs)

    doc = getattr(wrapper, "_apidoc", None) or {}
    doc.setdefault("manual_doc", {}).setdefault("security", [{"HttpSignature": []}])
    wrapper._apidoc = doc
    return wrapper
