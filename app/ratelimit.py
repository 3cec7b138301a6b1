"""Rate limits: per client IP on every request, per device on signed requests, and the
endpoint-specific limits (registration, prekeys, invites, recovery). Fixed windows,
counted in Redis when configured (every API process shares the counters; one Lua call
per lookup) and in process memory otherwise.

One lookup per request: an unsigned request counts its IP in `before_request`; a signed
request (`@signed`) counts IP and device together in one call once the signature is
verified, and only its IP (still one call) when verification fails — so a flood of
forged requests is limited by address exactly as before. An address found over its
limit is remembered in process memory until its window resets, and refused before any
work (no lookup, no signature check).

A window opens at its key's first hit and lasts the limit's period (`limits` semantics:
"300/minute" = 300 hits, then refused until 60 s after the first hit). Refusals carry
Retry-After (seconds until the window resets).
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from flask import request
from limits import parse

EXEMPT_PATHS = ("/v1/health", "/v1/ready", "/v1/docs", "/v1/openapi.json")
BLOCK_CACHE_MAX = 10_000        # addresses remembered as over their limit, per process
KEY_PREFIX = "custos:rl:"


def client_ip(req=None) -> str:
    """The caller's IP: the socket peer, or the X-Forwarded-For hop that trusted proxies
    report (ProxyFix, configured with settings.trusted_proxies, already rewrote it).
    `req`: the request object when the caller holds it already (no proxy lookup)."""
    return (req if req is not None else request).remote_addr or "unknown"


@dataclass(frozen=True)
class Limit:
    """A parsed limit string: `amount` hits per `seconds`."""
    text: str
    amount: int
    seconds: int

    def key(self, scope: str, key: str) -> str:
        return f"{KEY_PREFIX}{scope}:{self.amount}/{self.seconds}:{key}"


_parsed: dict[str, Limit] = {}


def parse_limit(text: str) -> Limit:
    """Parse "120/minute", "10 per hour", "5/30 seconds" (the `limits` syntax) once."""
    found = _parsed.get(text)
    if found is None:
        item = parse(text)
        found = _parsed[text] = Limit(text, int(item.amount), int(item.get_expiry()))
    return found


class Counters:
    """Interface: `incr(keys_and_windows)` adds one hit to each key (a window of
    `seconds` opens at a key's first hit) and returns [(count, seconds left), ...]."""

    def incr(self, items: list[tuple[str, int]]) -> list[tuple[int, float]]:
        raise NotImplementedError


class MemoryCounters(Counters):
    """One process (embedded mode). Thread-safe; expired windows are pruned as it grows."""

    def __init__(self, clock=time.monotonic, prune_at: int = 50_000):
        self._windows: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._prune_at = prune_at

    def incr(self, items):
        now = self._clock()
        out = []
        with self._lock:
            if len(self._windows) > self._prune_at:
                self._windows = {k: v for k, v in self._windows.items() if v[1] > now}
            for key, seconds in items:
                count, ends = self._windows.get(key, (0, 0.0))
                if ends <= now:
                    count, ends = 0, now + seconds
                count += 1
                self._windows[key] = (count, ends)
                out.append((count, ends - now))
        return out


_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  local ttl = -1
  if n > 1 then ttl = redis.call('TTL', key) end
  if ttl < 0 then
    redis.call('EXPIRE', key, ARGV[i])
    ttl = tonumber(ARGV[i])
  end
  out[#out + 1] = n
  out[#out + 1] = ttl
end
return out
"""


class RedisCounters(Counters):
    """Shared by every API process: INCR (+ EXPIRE on a window's first hit) for every
    key in one atomic Lua call, one round trip."""

    def __init__(self, client):
        self._script = client.register_script(_LUA)

    def incr(self, items):
        flat = self._script(keys=[k for k, _ in items], args=[s for _, s in items])
        return [(int(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)]


class RateLimiter:
    """The app's limiter (`deps().limiter`). `check()` is the one lookup; `enabled=False`
    (RATELIMIT_ENABLED=0) turns every check into a no-op."""

    def __init__(self, counters: Counters, *, enabled: bool, ip_limit: str, device_limit: str,
                 clock=time.monotonic):
        self.counters = counters
        self.enabled = enabled
        self.ip_limit = parse_limit(ip_limit)
        self.device_limit = parse_limit(device_limit)
        self._blocked: dict[str, float] = {}
        self._clock = clock

    def check(self, *limits: tuple[str, str, str]) -> int | None:
        """Count one hit for each (limit text, scope, key) in one lookup. None when all
        allow it, else seconds until the longest-blocked window resets (≥ 1)."""
        if not self.enabled:
            return None
        parsed = [(parse_limit(text), scope, key) for text, scope, key in limits]
        counts = self.counters.incr([(lim.key(scope, key), lim.seconds) for lim, scope, key in parsed])
        retry = None
        for (lim, scope, key), (count, left) in zip(parsed, counts):
            if count > lim.amount:
                wait = max(1, math.ceil(left))
                retry = max(retry or 0, wait)
                if scope == "ip":
                    self._block(key, wait)
        return retry

    def blocked(self, ip: str) -> int | None:
        """Seconds this address stays refused, from what this process has seen; no lookup."""
        if not self._blocked:
            return None
        until = self._blocked.get(ip)
        if until is None:
            return None
        left = until - self._clock()
        if left <= 0:
            self._blocked.pop(ip, None)
            return None
        return max(1, math.ceil(left))

    def _block(self, ip: str, seconds: int) -> None:
        now = self._clock()
        if len(self._blocked) >= BLOCK_CACHE_MAX:
            self._blocked = {k: v for k, v in self._blocked.items() if v > now}
            if len(self._blocked) >= BLOCK_CACHE_MAX:
                self._blocked.clear()
        self._blocked[ip] = now + seconds

    # the per-request checks
    def check_ip(self, ip: str) -> int | None:
        return self.check((self.ip_limit.text, "ip", ip))

    def check_ip_and_device(self, ip: str, device_id: str) -> tuple[int | None, int | None]:
        """(retry for the address, retry for the device) from one lookup."""
        if not self.enabled:
            return None, None
        counts = self.counters.incr([(self.ip_limit.key("ip", ip), self.ip_limit.seconds),
                                     (self.device_limit.key("device", device_id), self.device_limit.seconds)])
        (ip_count, ip_left), (dev_count, dev_left) = counts
        ip_retry = max(1, math.ceil(ip_left)) if ip_count > self.ip_limit.amount else None
        if ip_retry is not None:
            self._block(ip, ip_retry)
        dev_retry = max(1, math.ceil(dev_left)) if dev_count > self.device_limit.amount else None
        return ip_retry, dev_retry


def make_limiter(app, settings, redis=None) -> RateLimiter:
    """Build the limiter, install the per-address check for unsigned requests and the
    trusted-proxy fix. `redis`: the app's Redis client (None: process memory)."""
    from app.errors import RateLimited
    counters = RedisCounters(redis) if redis is not None else MemoryCounters()
    limiter = RateLimiter(counters, enabled=settings.ratelimit_enabled, ip_limit=settings.ratelimit_ip,
                          device_limit=settings.ratelimit_device)

    @app.before_request
    def _limit_address():
        if not limiter.enabled:
            return
        req = request._get_current_object()        # one proxy lookup
        if req.path.startswith(EXEMPT_PATHS):
            return
        ip = client_ip(req)
        retry = limiter.blocked(ip)
        if retry is None and not _is_signed(app.view_functions.get(req.endpoint)):
            retry = limiter.check_ip(ip)
        if retry is not None:
            raise RateLimited("too many requests from this address", headers={"Retry-After": str(retry)},
                              details={"retry_after": retry})

    if settings.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)
    return limiter


def _is_signed(view) -> bool:
    """True for views behind @signed (they count the address with the device)."""
    return bool(getattr(view, "_custos_signed", False))


def hit(limiter: RateLimiter, limit: str, *keys: str) -> int | None:
    """Count one hit against an endpoint-specific `limit` for `keys` (scope first);
    return None if allowed, else the seconds until the window resets (for Retry-After)."""
    scope, *rest = keys
    return limiter.check((limit, scope, ":".join(rest)))
