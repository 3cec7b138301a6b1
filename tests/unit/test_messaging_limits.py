"""Token buckets for senders: the pure arithmetic and the in-memory store."""
from __future__ import annotations

import math

from hypothesis import given, strategies as st

from messaging.limits import Bucket, MemoryBuckets, take


def test_new_bucket_is_full_and_drains_by_cost():
    b = Bucket(burst=5, rate=1.0)
    allowed, left, wait = take(b, None, None, now=100.0, cost=3)
    assert (allowed, left, wait) == (True, 2.0, 0.0)
    allowed, left, wait = take(b, left, 100.0, now=100.0, cost=3)
    assert allowed is False and left == 2.0 and wait == 1.0   # one more token needed at 1/s


def test_refill_is_capped_at_burst():
    b = Bucket(burst=5, rate=2.0)
    allowed, left, _ = take(b, 0.0, 0.0, now=1000.0, cost=1)
    assert allowed and left == 4.0


def test_cost_above_burst_can_never_pass():
    allowed, _left, wait = take(Bucket(3, 1.0), None, None, now=0.0, cost=4)
    assert not allowed and math.isinf(wait)


def test_clock_going_backwards_adds_nothing():
    allowed, left, _ = take(Bucket(5, 1.0), 1.0, 50.0, now=40.0, cost=1)
    assert allowed and left == 0.0


@given(st.integers(1, 50), st.floats(0.1, 50), st.lists(st.tuples(st.floats(0, 5), st.integers(1, 5)), max_size=40))
def test_never_more_than_burst_plus_refill(burst, rate, steps):
    """Over any sequence of requests, what passes is at most burst + rate·elapsed."""
    b = Bucket(burst, rate)
    tokens = updated = None
    now, passed = 0.0, 0
    for gap, cost in steps:
        now += gap
        ok, tokens, wait = take(b, tokens, updated, now, cost)
        updated = now
        passed += cost if ok else 0
        assert ok or wait > 0
    assert passed <= burst + rate * now + 1e-6


def test_memory_buckets_per_key_with_retry_after():
    clock = [0.0]
    buckets = MemoryBuckets(Bucket(2, 0.5), clock=lambda: clock[0])
    assert buckets.take("a", 2) is None
    assert buckets.take("a") == 2            # (1 - 0) / 0.5 s
    assert buckets.take("b") is None        # other senders are unaffected
    clock[0] = 2.0
    assert buckets.take("a") is None
    assert buckets.take("a", 3) == 3600     # above burst: never; a long Retry-After
