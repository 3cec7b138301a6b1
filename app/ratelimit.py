"""Rate limits: per client IP on every request (Flask-Limiter's default limit) and per
device on signed requests (`hit_device`), both in Redis when configured so all API
processes share counters, in process memory otherwise."""
from __future__ import annotations

import math
import time

from flask import request
from flask_limiter import Limiter
from limits import parse

EXEMPT_PATHS = ("/v1/health", "/v1/ready", "/v1/docs", "/v1/openapi.json")


def client_ip() -> str:
    """The caller's IP: the socket peer, or the X-Forwarded-For hop that trusted proxies
    report (ProxyFix, configured with settings.trusted_proxies, already rewrote it)."""
    return request.remote_addr or "unknown"


def make_limiter(app, settings) -> Limiter:
    limiter = Limiter(
        client_ip, app=app,
        default_limits=[settings.ratelimit_ip],
        default_limits_exempt_when=lambda: request.path.startswith(EXEMPT_PATHS),
        storage_uri=settings.redis_url or "memory://",
        storage_options={"socket_connect_timeout": 5} if settings.redis_url else {},
        headers_enabled=False, strategy="fixed-window",
        key_prefix="custos", enabled=settings.ratelimit_enabled,
    )
    if settings.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)
    return limiter


def hit(limiter: Limiter, limit: str, *keys: str) -> int | None:
    """Count one hit against `limit` for `keys`; return None if allowed, else the number of
    seconds until the window resets (for Retry-After)."""
    if not limiter.enabled:
        return None
    item = parse(limit)
    strategy = limiter.limiter
    if strategy.hit(item, "custos", *keys):
        return None
    reset_at, _remaining = strategy.get_window_stats(item, "custos", *keys)
    return max(1, math.ceil(reset_at - time.time()))
