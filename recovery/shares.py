"""SLIP-39 (shamir-mnemonic) wrappers and custody keys. Pure.

shamir-mnemonic's exceptions quote share words; every call here catches them and raises
InvalidShare/InvalidScheme with a message of our own, `from None`, so no share word
reaches a log, an error envelope or a traceback chain.

Scheme (the public SLIP-39 parameters an account registers):
    {"group_threshold": 1, "groups": [{"threshold": 2, "count": 3}],
     "identifier": 12345, "extendable": true, "iteration_exponent": 1}

Custody key: Ed25519 private key = HKDF-SHA256(ikm = the share's normalized mnemonic,
salt = b"custos-custody-v1", info = b"ed25519 custody key", 32 bytes). A holder proves
it still has its share by signing `custody_message(holder_id, challenge)`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from recovery.errors import InvalidScheme, InvalidShare
from recovery.limits import MAX_GROUPS

CUSTODY_SALT = b"custos-custody-v1"
CUSTODY_INFO = b"ed25519 custody key"
MAX_MNEMONIC_CHARS = 1000


@dataclass(frozen=True)
class Scheme:
    group_threshold: int
    groups: tuple[tuple[int, int], ...]        # (member threshold, member count) per group
    identifier: int
    extendable: bool
    iteration_exponent: int

    def as_dict(self) -> dict:
        return {"group_threshold": self.group_threshold,
                "groups": [{"threshold": t, "count": c} for t, c in self.groups],
                "identifier": self.identifier, "extendable": self.extendable,
                "iteration_exponent": self.iteration_exponent}


@dataclass(frozen=True)
class ShareInfo:
    """The public parameters of one parsed share (never its value)."""
    identifier: int
    extendable: bool
    iteration_exponent: int
    group_index: int
    group_threshold: int
    group_count: int
    member_index: int
    member_threshold: int


def _int(value, name: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise InvalidScheme(f"{name} must be an integer {lo}..{hi}")
    return value


def parse_scheme(raw) -> Scheme:
    """Validate a scheme dict. Raises InvalidScheme naming the field."""
    if not isinstance(raw, dict):
        raise InvalidScheme("scheme must be an object")
    groups_raw = raw.get("groups")
    if not isinstance(groups_raw, list) or not 1 <= len(groups_raw) <= MAX_GROUPS:
        raise InvalidScheme(f"scheme.groups must be a list of 1..{MAX_GROUPS} groups")
    groups = []
    for i, g in enumerate(groups_raw):
        if not isinstance(g, dict):
            raise InvalidScheme(f"scheme.groups[{i}] must be an object")
        count = _int(g.get("count"), f"scheme.groups[{i}].count", 1, 16)
        threshold = _int(g.get("threshold"), f"scheme.groups[{i}].threshold", 1, count)
        if threshold == 1 and count > 1:
            raise InvalidScheme(f"scheme.groups[{i}]: a 1-of-n group is not allowed by SLIP-39")
        groups.append((threshold, count))
    gt = _int(raw.get("group_threshold"), "scheme.group_threshold", 1, len(groups))
    ident = _int(raw.get("identifier"), "scheme.identifier", 0, (1 << 15) - 1)
    exp = _int(raw.get("iteration_exponent", 1), "scheme.iteration_exponent", 0, 15)
    ext = raw.get("extendable", True)
    if not isinstance(ext, bool):
        raise InvalidScheme("scheme.extendable must be a boolean")
    return Scheme(gt, tuple(groups), ident, ext, exp)


def parse_share(mnemonic) -> ShareInfo:
    """Parse and checksum-verify one SLIP-39 mnemonic. Raises InvalidShare (never quoting it)."""
    from shamir_mnemonic.share import Share
    if not isinstance(mnemonic, str) or not 0 < len(mnemonic) <= MAX_MNEMONIC_CHARS:
        raise InvalidShare("a share must be a SLIP-39 mnemonic")
    s = _quietly(lambda: Share.from_mnemonic(normalize(mnemonic)))
    if s is None:  # raised outside the except block: no __context__ quoting the words
        raise InvalidShare("the share is not a valid SLIP-39 mnemonic (checksum or format)")
    return ShareInfo(s.identifier, s.extendable, s.iteration_exponent, s.group_index, s.group_threshold,
                     s.group_count, s.index, s.member_threshold)


def check_share(info: ShareInfo, scheme: Scheme, group_index: int, member_index: int) -> None:
    """Refuse a share whose identifier or parameters contradict the scheme or the slot it
    is registered for. Raises InvalidShare(code=share_mismatch)."""
    problems = []
    if info.identifier != scheme.identifier:
        problems.append("identifier")
    if info.extendable != scheme.extendable:
        problems.append("extendable")
    if info.iteration_exponent != scheme.iteration_exponent:
        problems.append("iteration_exponent")
    if info.group_threshold != scheme.group_threshold or info.group_count != len(scheme.groups):
        problems.append("group parameters")
    elif info.member_threshold != scheme.groups[info.group_index][0]:
        problems.append("member threshold")
    if (info.group_index, info.member_index) != (group_index, member_index):
        problems.append("group/member index")
    if problems:
        raise InvalidShare("the share contradicts the scheme: " + ", ".join(problems), code="share_mismatch",
                           details={"fields": problems})


def _quietly(fn):
    """fn() or None if it raised. shamir-mnemonic's exceptions quote share words: they
    are dropped here, so nothing can chain them into a later traceback."""
    try:
        return fn()
    except Exception:
        return None


def normalize(mnemonic: str) -> str:
    return " ".join(mnemonic.strip().lower().split())


def custody_private_key(mnemonic: str) -> Ed25519PrivateKey:
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=CUSTODY_SALT, info=CUSTODY_INFO).derive(
        normalize(mnemonic).encode())
    return Ed25519PrivateKey.from_private_bytes(seed)


def custody_public_key(mnemonic: str) -> bytes:
    """The raw 32-byte Ed25519 public key a holder registers for its share."""
    return custody_private_key(mnemonic).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def custody_message(holder_id: str, challenge: bytes) -> bytes:
    return b"custos-custody-proof-v1\0" + holder_id.encode() + b"\0" + challenge


def verify_custody(public_key: bytes, holder_id: str, challenge: bytes, signature: bytes) -> bool:
    """True if `signature` proves possession of the share behind `public_key`."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, custody_message(holder_id, challenge))
        return True
    except Exception:
        return False


def split(secret: bytes, scheme_groups: list[tuple[int, int]], group_threshold: int = 1, *,
          passphrase: bytes = b"", extendable: bool = True, iteration_exponent: int = 1) -> list[list[str]]:
    """Split `secret` (16..32 bytes, even length) into SLIP-39 mnemonics per group
    (client side). `passphrase` must be bytes."""
    from shamir_mnemonic import generate_mnemonics
    if not isinstance(passphrase, bytes):
        raise TypeError("passphrase must be bytes")
    result = _quietly(lambda: generate_mnemonics(group_threshold, list(scheme_groups), secret, passphrase,
                                                 extendable, iteration_exponent))
    if result is None:
        raise InvalidScheme("these parameters cannot split this secret")
    return result


def combine(mnemonics: list[str], passphrase: bytes = b"") -> bytes:
    """Recover the secret (client side). Raises InvalidShare without quoting any word.
    A wrong passphrase silently yields a different secret (SLIP-39 by design)."""
    from shamir_mnemonic import combine_mnemonics
    if not isinstance(passphrase, bytes):
        raise TypeError("passphrase must be bytes")
    result = _quietly(lambda: combine_mnemonics([normalize(m) for m in mnemonics], passphrase))
    if result is None:
        raise InvalidShare("these shares do not combine (too few, mixed sets or corrupted)")
    return result


def recoverable(scheme: Scheme, have: set[tuple[int, int]]) -> bool:
    """Whether the shares at (group, member) slots in `have` can rebuild the secret."""
    complete = sum(1 for g, (t, _c) in enumerate(scheme.groups)
                   if sum(1 for (gi, _m) in have if gi == g) >= t)
    return complete >= scheme.group_threshold


def custody_status(scheme: Scheme, proven: set[tuple[int, int]]) -> str:
    """nominal: still recoverable after losing any one proven share; critical: recoverable
    but one loss away from not; at_risk: not recoverable from proven holders."""
    if not recoverable(scheme, proven):
        return "at_risk"
    if all(recoverable(scheme, proven - {slot}) for slot in proven):
        return "nominal"
    return "critical"


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]
