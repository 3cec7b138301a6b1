"""Waiting in tests for something another process or thread does: one poll loop."""
from __future__ import annotations

import time
from pathlib import Path

import pytest


def wait_for(predicate, *, what: str = "condition", timeout: float = 60.0, interval: float = 0.05,
             log_path=None):
    """The first truthy value of `predicate()` within `timeout` seconds, polled every
    `interval` seconds; otherwise the test fails naming `what` (with the last 3,000
    characters of `log_path`, a worker's log, when given)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    tail = f"\n--- worker log ---\n{Path(log_path).read_text()[-3000:]}" if log_path else ""
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}{tail}")
