"""Verify libsignal (XEdDSA / curve25519-donna `curve25519_sign`) signatures made with a
Curve25519 identity key, using only `cryptography`'s Ed25519.

The Montgomery u-coordinate of the identity key maps to the Edwards y = (u-1)/(u+1);
the sign bit of the Edwards x travels in the top bit of the signature's last byte.
"""
from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

DJB_TYPE = 0x05
_P = 2 ** 255 - 19


def is_djb_key(key: bytes) -> bool:
    """A serialized Curve25519 public key: the 0x05 type byte and 32 bytes."""
    return isinstance(key, bytes) and len(key) == 33 and key[0] == DJB_TYPE


def verify(identity_key: bytes, message: bytes, signature: bytes) -> bool:
    """True if `signature` (64 bytes) over `message` was made by `identity_key` (33-byte
    serialized Curve25519 key). Never raises for bad input: returns False."""
    if not is_djb_key(identity_key) or not isinstance(signature, bytes) or len(signature) != 64:
        return False
    u = int.from_bytes(identity_key[1:], "little") & ((1 << 255) - 1)
    if (u + 1) % _P == 0:
        return False
    y = (u - 1) * pow(u + 1, _P - 2, _P) % _P
    ed = bytearray(y.to_bytes(32, "little"))
    ed[31] = (ed[31] & 0x7F) | (signature[63] & 0x80)
    sig = bytearray(signature)
    sig[63] &= 0x7F
    try:
        Ed25519PublicKey.from_public_bytes(bytes(ed)).verify(bytes(sig), message)
    except (InvalidSignature, ValueError):
        return False
    return True
