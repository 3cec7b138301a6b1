"""Picking a TOTP code in tests: a step later than the last one the server accepted (codes
count once) that the server (±1 step) will still accept for at least 15 s — the previous
step only while 15 s of the current one remain (it expired under a loaded machine between
the pick and the check), else the current or the next. When none is left, waits for the
next step."""
from __future__ import annotations

import time

import pyotp


def fresh(totp: pyotp.TOTP, last_step: int) -> str:
    return totp.generate_otp(pick_step(totp, last_step))


def pick_step(totp: pyotp.TOTP, last_step: int) -> int:
    from store.base import utcnow
    while True:
        now = utcnow()
        current = totp.timecode(now)
        left = totp.interval - now.timestamp() % totp.interval
        steps = ([current - 1] if left >= 15 else []) + [current, current + 1]
        usable = [step for step in steps if step > last_step]
        if usable:
            return usable[0]
        time.sleep(1)
