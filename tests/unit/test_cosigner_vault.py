"""Envelope encryption: round trip, tamper and move detection, rotation."""
import os

import pytest

from cosigner import vault
from cosigner.errors import VaultError


def test_round_trip_and_binding_to_record_id():
    ring = vault.LocalKeyring(os.urandom(32))
    sealed = vault.seal(ring, b"tprv-secret", "key_1")
    assert vault.open_secret(ring, sealed, "key_1") == b"tprv-secret"
    assert b"tprv-secret" not in sealed.ciphertext + sealed.wrapped_dek
    with pytest.raises(VaultError):
        vault.open_secret(ring, sealed, "key_2")  # moved to another row


def test_tampering_is_detected():
    ring = vault.LocalKeyring(os.urandom(32))
    sealed = vault.seal(ring, b"secret", "k")
    flipped = bytearray(sealed.ciphertext)
    flipped[-1] ^= 1
    with pytest.raises(VaultError):
        vault.open_secret(ring, vault.SealedSecret(sealed.kek_id, sealed.wrapped_dek, bytes(flipped)), "k")


def test_rotation_rewraps_only_the_data_key():
    old, new = os.urandom(32), os.urandom(32)
    sealed = vault.seal(vault.LocalKeyring(old), b"secret", "k")
    during = vault.LocalKeyring(new, [old])
    assert vault.open_secret(during, sealed, "k") == b"secret"  # old records still open mid-rotation
    rotated = vault.rewrap(during, sealed, "k")
    assert rotated.kek_id == vault.master_key_id(new) and rotated.ciphertext == sealed.ciphertext
    assert vault.rewrap(during, rotated, "k") is rotated  # idempotent
    after = vault.LocalKeyring(new)
    assert vault.open_secret(after, rotated, "k") == b"secret"
    with pytest.raises(VaultError):
        vault.open_secret(after, sealed, "k")  # the old master key is gone


def test_master_keys_must_be_32_bytes():
    with pytest.raises(VaultError):
        vault.LocalKeyring(b"short")
