"""Named limits for messaging, and the token bucket used to rate-limit senders.

The bucket arithmetic (`take`) is pure and unit-tested; `MemoryBuckets` keeps state in
process memory (embedded mode, one API process) and `RedisBuckets` in Redis with the same
arithmetic in a Lua script, so every API process shares one bucket per sender. Losing
Redis only resets the buckets: no message lives there.
"""
from __future__ import annotations

import datetime as dt
import math
import threading
import time
from dataclasses import dataclass

MAX_MESSAGE_BYTES = 64 * 1024            # decoded ciphertext per envelope
MAX_ENVELOPES_PER_REQUEST = 50
MAX_MESSAGE_TYPE = 255
MAX_FETCH = 100                          # messages per page
MAX_ACK = 100                            # guids per batched acknowledgement
MAX_GUID = 36
MAX_PREKEYS_PER_UPLOAD = 100
INVITE_TTL = dt.timedelta(hours=72)
MAX_DISPLAY_NAME = 64
MAX_PENDING_INVITES = 20                 # unexpired, unaccepted invites per device
MAX_CONTACTS = 200                       # contacts per device
MAX_RECEIVE_ADDRESS = 100
QR_VERSION = 1


@dataclass(frozen=True)
class Bucket:
    """`burst` tokens at most, refilled at `rate` tokens per second."""
    burst: int
    rate: float


def take(bucket: Bucket, tokens: float | None, updated: float | None, now: float,
         cost: int = 1) -> tuple[bool, float, float]:
    """Try to take `cost` tokens from a bucket holding `tokens` as of time `updated`
    (None: a full new bucket). Returns (allowed, tokens left, seconds to wait before
    `cost` tokens are available; 0 when allowed). Pure."""
    if tokens is None or updated is None:
        tokens, updated = float(bucket.burst), now
    tokens = min(float(bucket.burst), tokens + max(0.0, now - updated) * bucket.rate)
    if cost <= tokens:
        return True, tokens - cost, 0.0
    if cost > bucket.burst:
        return False, tokens, math.inf
    return False, tokens, (cost - tokens) / bucket.rate


class Buckets:
    """Interface: `take(key, cost)` → None if allowed, else seconds to wait (≥ 1, int)."""

    def __init__(self, bucket: Bucket):
        self.bucket = bucket

    def take(self, key: str, cost: int = 1) -> int | None:
        raise NotImplementedError


def _retry(wait: float) -> int | None:
    return None if wait <= 0 else (3600 if math.isinf(wait) else max(1, math.ceil(wait)))


class MemoryBuckets(Buckets):
    def __init__(self, bucket: Bucket, clock=time.monotonic):
        super().__init__(bucket)
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def take(self, key, cost=1):
        with self._lock:
            now = self._clock()
            tokens, updated = self._state.get(key, (None, None))
            allowed, left, wait = take(self.bucket, tokens, updated, now, cost)
            self._state[key] = (left, now)
        return None if allowed else _retry(wait)


_LUA = """
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil or updated == nil then tokens = burst; updated = now end
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local allowed = 0
local wait = 0
if cost <= tokens then
  tokens = tokens - cost
  allowed = 1
elseif cost > burst then
  wait = -1
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {allowed, tostring(wait)}
"""


class RedisBuckets(Buckets):
    """Shared by every API process; the same arithmetic as `take`, atomic in Lua."""

    def __init__(self, bucket: Bucket, client, prefix: str = "custos:bucket:"):
        super().__init__(bucket)
        self._script = client.register_script(_LUA)
        self._prefix = prefix

    def take(self, key, cost=1):
        allowed, wait = self._script(keys=[self._prefix + key],
                                     args=[self.bucket.burst, repr(float(self.bucket.rate)), cost])
        if int(allowed):
            return None
        wait = float(wait)
        return _retry(math.inf if wait < 0 else wait)
