"""Envelope encryption for secrets at rest (cosigner keys; later the operator's shares).

Each secret gets its own random 256-bit data key (DEK); the secret is sealed with
AES-256-GCM under the DEK, and the DEK is wrapped by a key-encryption key (KEK) through a
`KeyWrapper` (a local keyring of master keys from settings, or a KMS/HSM adapter with the
same two methods). Both layers bind the record id as associated data, so a blob moved to
another row does not decrypt. Plaintext exists only inside `open_secret()`'s caller.

Rotation without downtime: run with the new master key as MASTER_KEY and the old one in
MASTER_KEY_PREVIOUS, call `rewrap()` over every record (only DEKs are re-wrapped; the
sealed secrets are untouched), then drop the old key.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cosigner.errors import VaultError

NONCE_BYTES = 12
KEY_BYTES = 32


def master_key_id(key: bytes) -> str:
    """A public identifier for a master key (not reversible, safe to store and log)."""
    return hmac.new(key, b"custos master key id", hashlib.sha256).hexdigest()[:16]


class KeyWrapper:
    """Interface: wrap / unwrap data keys. A KMS adapter implements the same methods."""

    @property
    def current_id(self) -> str:
        raise NotImplementedError

    def wrap(self, dek: bytes, aad: bytes) -> tuple[str, bytes]:
        """Return (kek id, wrapped blob)."""
        raise NotImplementedError

    def unwrap(self, kek_id: str, blob: bytes, aad: bytes) -> bytes:
        raise NotImplementedError


class LocalKeyring(KeyWrapper):
    """Master keys held in process memory: the current one wraps, any known one unwraps."""

    def __init__(self, current: bytes, previous: list[bytes] | tuple = ()):
        for k in (current, *previous):
            if len(k) != KEY_BYTES:
                raise VaultError("master keys must be 32 bytes")
        self._current = current
        self._keys = {master_key_id(k): k for k in (current, *previous)}

    @property
    def current_id(self) -> str:
        return master_key_id(self._current)

    def wrap(self, dek, aad):
        nonce = os.urandom(NONCE_BYTES)
        return self.current_id, nonce + AESGCM(self._current).encrypt(nonce, dek, b"dek|" + aad)

    def unwrap(self, kek_id, blob, aad):
        key = self._keys.get(kek_id)
        if key is None:
            raise VaultError(f"master key {kek_id} is not configured")
        try:
            return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], b"dek|" + aad)
        except InvalidTag:
            raise VaultError("data key does not unwrap (tampered or wrong master key)") from None


@dataclass(frozen=True)
class SealedSecret:
    """What is stored: all opaque bytes plus the id of the KEK that wrapped the DEK."""
    kek_id: str
    wrapped_dek: bytes
    ciphertext: bytes


def seal(wrapper: KeyWrapper, plaintext: bytes, record_id: str) -> SealedSecret:
    """Encrypt `plaintext` for the record `record_id` under a fresh data key."""
    dek = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(NONCE_BYTES)
    aad = record_id.encode()
    ciphertext = nonce + AESGCM(dek).encrypt(nonce, plaintext, b"secret|" + aad)
    kek_id, wrapped = wrapper.wrap(dek, aad)
    return SealedSecret(kek_id, wrapped, ciphertext)


def open_secret(wrapper: KeyWrapper, sealed: SealedSecret, record_id: str) -> bytes:
    """Decrypt; raises VaultError if anything was altered or the master key is unknown."""
    aad = record_id.encode()
    dek = wrapper.unwrap(sealed.kek_id, sealed.wrapped_dek, aad)
    try:
        return AESGCM(dek).decrypt(sealed.ciphertext[:NONCE_BYTES], sealed.ciphertext[NONCE_BYTES:],
                                   b"secret|" + aad)
    except InvalidTag:
        raise VaultError("secret does not decrypt (tampered or moved)") from None


def rewrap(wrapper: KeyWrapper, sealed: SealedSecret, record_id: str) -> SealedSecret:
    """Re-wrap the DEK under the current master key; the ciphertext is unchanged.
    Idempotent: a record already under the current key is returned as is."""
    if sealed.kek_id == wrapper.current_id:
        return sealed
    aad = record_id.encode()
    dek = wrapper.unwrap(sealed.kek_id, sealed.wrapped_dek, aad)
    kek_id, wrapped = wrapper.wrap(dek, aad)
    return SealedSecret(kek_id, wrapped, sealed.ciphertext)


def _decode_key(text: str) -> bytes:
    text = text.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except ValueError:
        raise VaultError("a master key must be 32 bytes, base64 or hex") from None
    if len(raw) != KEY_BYTES:
        raise VaultError("a master key must be 32 bytes, base64 or hex")
    return raw


def keyring_from_settings(settings) -> LocalKeyring:
    """The keyring from MASTER_KEY / MASTER_KEY_FILE (+ MASTER_KEY_PREVIOUS). In
    development without either, a random key is created once in var/master.key (0600);
    production refuses to start without one (Settings.validate)."""
    if settings.master_key:
        current = _decode_key(settings.master_key)
    elif settings.master_key_file:
        current = _decode_key(Path(settings.master_key_file).read_text())
    elif settings.production:
        raise VaultError("no master key configured")
    else:
        from config.settings import VAR_DIR
        path = VAR_DIR / "master.key"
        VAR_DIR.mkdir(exist_ok=True)
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(base64.b64encode(os.urandom(KEY_BYTES)).decode())
        current = _decode_key(path.read_text())
    previous = [_decode_key(k) for k in settings.master_key_previous]
    return LocalKeyring(current, previous)
