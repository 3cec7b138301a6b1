"""Strict base64 for the messaging API (keys, signatures, ciphertext). Pure."""
from __future__ import annotations

import base64
import binascii


def b64decode(value, *, what: str, error, min_len: int = 1, max_len: int | None = None,
              exact: int | None = None) -> bytes:
    """Decode standard base64 (padding required, no whitespace); raise `error(message)`
    naming `what` (never quoting the value) when malformed or the wrong length — except
    over `max_len`, which is a size limit: TooLarge (422 validation_error, the one rule
    for limits)."""
    if not isinstance(value, str):
        raise error(f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise error(f"{what} is not valid base64") from None
    if exact is not None and len(raw) != exact:
        raise error(f"{what} must decode to {exact} bytes")
    if len(raw) < min_len:
        raise error(f"{what} must not be empty")
    if max_len is not None and len(raw) > max_len:
        from messaging.errors import TooLarge
        raise TooLarge(f"{what} must decode to at most {max_len} bytes", field=what, max_bytes=max_len)
    return raw


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
