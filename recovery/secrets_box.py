"""Small crypto helpers for recovery: the keyed email hash, sealing to the requester's
X25519 key (NaCl sealed box), the case's verification phrase, and completion proofs.
Pure (keys are passed in)."""
from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from recovery.errors import ProofInvalid
from recovery.limits import COMPLETE_PATH, MAX_EMAIL


def email_key(secret_key: str) -> bytes:
    """The HMAC key for email lookups, derived from SECRET_KEY (rotating SECRET_KEY means
    re-registering recovery emails)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"custos-email-lookup-v1",
                info=b"email hmac").derive(secret_key.encode())


def normalize_email(email) -> str | None:
    """Lower-cased, trimmed address, or None if it does not look like one."""
    if not isinstance(email, str):
        return None
    e = email.strip().lower()
    local, at, domain = e.rpartition("@")
    if not at or not local or "." not in domain or len(e) > MAX_EMAIL or any(c.isspace() for c in e):
        return None
    return e


def email_hash(key: bytes, email: str) -> str:
    return hmac.new(key, email.encode(), hashlib.sha256).hexdigest()


def seal_to(sealing_key: bytes, plaintext: bytes) -> bytes:
    """NaCl sealed box: only the holder of the X25519 private key opens it."""
    from nacl.public import PublicKey, SealedBox
    return SealedBox(PublicKey(sealing_key)).encrypt(plaintext)


def valid_x25519(raw: bytes) -> bool:
    return isinstance(raw, bytes) and len(raw) == 32 and raw != bytes(32)


def verification_phrase(case_id: str, sealing_key: bytes, words: int = 4) -> str:
    """A short phrase both the contact and the requester compute (by phone they compare
    it): BIP39 words from SHA-256(case id ‖ sealing key)."""
    from embit.wordlists.bip39 import WORDLIST
    digest = hashlib.sha256(b"custos-verification\0" + case_id.encode() + b"\0" + sealing_key).digest()
    return " ".join(WORDLIST[int.from_bytes(digest[2 * i:2 * i + 2], "big") % 2048] for i in range(words))


def completion_message(case_id: str, challenge: bytes) -> bytes:
    """SHA-256 of what the requester signs with the recovery key at COMPLETE_PATH."""
    return hashlib.sha256(b"custos-recovery-complete-v1\0" + case_id.encode() + b"\0" + challenge).digest()


def verify_completion(recovery_xpub: str, case_id: str, challenge: bytes, signature: bytes) -> None:
    """Check a DER ECDSA signature by the recovery account key's child /9/0 (non-hardened
    below the BIP48 account xpub). Raises ProofInvalid."""
    from embit.bip32 import HDKey
    from embit.ec import Signature
    try:
        pub = HDKey.from_string(recovery_xpub).derive(list(COMPLETE_PATH)).key
        ok = pub.verify(Signature.parse(signature), completion_message(case_id, challenge))
    except Exception:
        ok = False
    if not ok:
        raise ProofInvalid("the signature is not the recovery key's over this case's challenge")
