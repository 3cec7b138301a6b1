"""One-time codes for recovery: 6 digits, argon2id-hashed at rest, OTP_TTL lifetime,
OTP_MAX_ATTEMPTS wrong answers before the case fails, a resend cooldown. Pure apart
from the hasher (argon2-cffi); every check takes `now`."""
from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from recovery.errors import TooSoon
from recovery.limits import OTP_DIGITS, OTP_MAX_ATTEMPTS, OTP_RESEND_COOLDOWN, OTP_TTL

# argon2id, 16 MiB, 2 passes: ~20 ms here; an OTP lives 10 minutes and allows 5 tries,
# so the hash only has to resist offline guessing of a 10^6 space for that long.
_HASHER = PasswordHasher(time_cost=2, memory_cost=16 * 1024, parallelism=1)


def generate() -> str:
    """A uniformly random 6-digit code (leading zeros kept)."""
    return f"{secrets.randbelow(10 ** OTP_DIGITS):0{OTP_DIGITS}d}"


def hash_code(code: str) -> str:
    return _HASHER.hash(code)


def matches(stored_hash: str | None, code) -> bool:
    """Constant-work check of `code` against the stored hash; False for malformed input."""
    if not isinstance(code, str) or len(code) != OTP_DIGITS or not code.isdigit() or not stored_hash:
        _burn()
        return False
    try:
        return _HASHER.verify(stored_hash, code)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_DUMMY = None


def _burn() -> None:
    """Spend the same work as a real verification (no timing hint about malformed codes)."""
    global _DUMMY
    if _DUMMY is None:
        _DUMMY = _HASHER.hash("000000")
    try:
        _HASHER.verify(_DUMMY, "999999")
    except VerifyMismatchError:
        pass


@dataclass(frozen=True)
class Issued:
    code: str
    hash: str
    sent_at: dt.datetime
    expires_at: dt.datetime


def issue(now: dt.datetime, last_sent_at: dt.datetime | None = None) -> Issued:
    """A new code, refusing (TooSoon, with retry_after seconds) inside the cooldown."""
    if last_sent_at is not None and now - last_sent_at < OTP_RESEND_COOLDOWN:
        wait = int((OTP_RESEND_COOLDOWN - (now - last_sent_at)).total_seconds()) + 1
        raise TooSoon("a code was sent moments ago; wait before asking again", details={"retry_after": wait})
    code = generate()
    return Issued(code, hash_code(code), now, now + OTP_TTL)


def attempts_left(attempts: int) -> int:
    return max(0, OTP_MAX_ATTEMPTS - attempts)
