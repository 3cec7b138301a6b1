"""Device public keys: parsing, fingerprints and signature verification. Pure.

Key types and their RFC 9421 algorithm names:
- `ed25519`: 32-byte raw public key; signatures are 64 bytes. Verified with libsodium
  (PyNaCl): about half the work of OpenSSL's Ed25519 per request, and stricter (it also
  refuses small-order and non-canonical public keys and non-canonical S).
- `ecdsa-p256`: SEC1 point (33-byte compressed or 65-byte uncompressed); signatures are
  the 64-byte r||s concatenation RFC 9421 §3.3.4 prescribes (DER is refused), with low S
  (s ≤ n/2): ECDSA's (r, n − s) verifies too, so only one of the two forms is accepted and
  a signature cannot be altered into another valid one. A signer that yields a high S
  (Secure Enclave, Android Keystore) replaces s by n − s before sending.
"""
from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError, CryptoError

from devices.errors import InvalidPublicKey

KEY_TYPES = ("ed25519", "ecdsa-p256")
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
ALGORITHMS = {"ed25519": "ed25519", "ecdsa-p256": "ecdsa-p256-sha256"}


def b64decode_strict(value: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not. Raises ValueError."""
    if not isinstance(value, str) or not value or len(value) > 4096:
        raise ValueError("not a base64 string")
    s = value.strip().replace("-", "+").replace("_", "/")
    s += "=" * (-len(s) % 4)
    return base64.b64decode(s, validate=True)


def parse_public_key(key_type: str, encoded: str) -> bytes:
    """Validate a base64 public key of `key_type`; return its canonical bytes (ed25519:
    32 raw bytes, P-256: 33-byte compressed point). Raises InvalidPublicKey."""
    if key_type not in KEY_TYPES:
        raise InvalidPublicKey(f"key_type must be one of {', '.join(KEY_TYPES)}")
    try:
        raw = b64decode_strict(encoded)
    except ValueError:
        raise InvalidPublicKey("public_key is not valid base64") from None
    if key_type == "ed25519":
        if len(raw) != 32:
            raise InvalidPublicKey("an ed25519 public key is 32 bytes")
        try:
            Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            raise InvalidPublicKey("not a valid ed25519 public key") from None
        return raw
    if len(raw) not in (33, 65):
        raise InvalidPublicKey("a P-256 public key is a 33- or 65-byte SEC1 point")
    try:
        point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise InvalidPublicKey("not a point on P-256") from None
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    return point.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


def fingerprint(public_key: bytes) -> str:
    """base64url (no padding) SHA-256 of the canonical public key bytes: the `keyid` a
    device uses to sign its own registration."""
    return base64.urlsafe_b64encode(hashlib.sha256(public_key).digest()).rstrip(b"=").decode()


def low_s(signature: bytes) -> bytes:
    """The low-S form of a 64-byte P-256 r||s signature (unchanged when already low)."""
    s = int.from_bytes(signature[32:], "big")
    return signature if s <= P256_ORDER // 2 else signature[:32] + (P256_ORDER - s).to_bytes(32, "big")


def verify_signature(key_type: str, public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True when `signature` is valid for `message` under the key. Never raises for a bad
    signature or a malformed one."""
    try:
        if key_type == "ed25519":
            if len(signature) != 64 or len(public_key) != 32:
                return False
            crypto_sign_open(bytes(signature) + bytes(message), bytes(public_key))
            return True
        if key_type == "ecdsa-p256":
            if len(signature) != 64:
                return False
            r = int.from_bytes(signature[:32], "big")
            s = int.from_bytes(signature[32:], "big")
            if not 0 < s <= P256_ORDER // 2:
                return False
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
            key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
            return True
    except (InvalidSignature, BadSignatureError, CryptoError, ValueError, TypeError):
        return False
    return False
