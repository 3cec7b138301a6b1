"""Link tokens and the page's CSRF token. Pure (keys are passed in).

Each link token is 128 random bits (URL-safe base64, 22 characters), stored only as its
SHA-256 (a high-entropy token needs no slow hash). The CSRF token of the page is an HMAC
of SECRET_KEY over the view token's digest, so a form only posts for the link it was
rendered for."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from verification.limits import TOKEN_BYTES

_SHAPE = re.compile(r"^[A-Za-z0-9_-]{22}$")


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def well_formed(token) -> bool:
    return isinstance(token, str) and bool(_SHAPE.match(token))


def digest(token: str) -> str:
    return hashlib.sha256(b"custos-verify-token\0" + token.encode()).hexdigest()


def csrf_token(secret_key: str, view_digest: str) -> str:
    return hmac.new(secret_key.encode(), b"custos-verify-csrf|" + view_digest.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret_key: str, view_digest: str, sent) -> bool:
    return isinstance(sent, str) and hmac.compare_digest(sent, csrf_token(secret_key, view_digest))
