"""Pure credential helpers: argon2id password hashes, TOTP (RFC 6238, pyotp) with a
replay guard, random tokens and their digests, and the enrollment QR code (SVG)."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from admin.limits import TOTP_VALID_WINDOW

# argon2id, m = 19 MiB, t = 2, p = 1 (OWASP's recommended minimum), chosen for a 2-core
# server: one verification takes ~64 ms on ONE core (the library default, 64 MiB × 3 passes
# over 4 lanes, took ~600 ms of CPU and both cores), so logins cannot starve the API; the
# console also throttles attempts before hashing (admin.login_guard). Hashes made with
# other parameters still verify and are re-hashed at the next successful login.
ARGON2_TIME_COST, ARGON2_MEMORY_KIB, ARGON2_PARALLELISM = 2, 19 * 1024, 1
_hasher = PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM)
# a hash of a random password with the same parameters: verified against when the username
# is unknown, so an unknown user costs exactly the work of a wrong password
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
TOTP_ISSUER = "Custos"
TOKEN_PREFIX = "cst_"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; always does one argon2 verification."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


def new_totp_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, staff_id: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=staff_id, issuer_name=TOTP_ISSUER)


def totp_step(secret: str, code: str, now: dt.datetime, last_step: int) -> int | None:
    """The time step `code` is valid for (within ±TOTP_VALID_WINDOW steps of `now`) and
    later than `last_step` (each code works once); None otherwise."""
    code = (code or "").strip().replace(" ", "")
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    found = None
    for offset in range(-TOTP_VALID_WINDOW, TOTP_VALID_WINDOW + 1):
        step = current + offset
        if hmac.compare_digest(totp.generate_otp(step), code) and step > last_step:
            found = step
    return found


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_session_key() -> str:
    return secrets.token_urlsafe(32)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def qr_svg(data: str) -> str:
    """An inline SVG QR code for `data` (the otpauth:// URI)."""
    import segno
    return segno.make(data, error="m").svg_inline(scale=5, border=2, dark="#111", light="#fff")
