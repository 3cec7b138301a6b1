"""QR payload round trip and validation; libsignal signature verification (XEdDSA)."""
from __future__ import annotations

import json
import secrets

import pytest
from hypothesis import given, strategies as st

from messaging import xeddsa
from messaging.qr import QrPayload

FP = "ab" * 32


def code() -> str:
    return secrets.token_urlsafe(32)


@given(name=st.text(min_size=1, max_size=64), addr=st.one_of(st.none(), st.text(min_size=1, max_size=100)))
def test_round_trip(name, addr):
    qr = QrPayload(code(), FP, name, addr)
    assert QrPayload.from_json(qr.to_json()) == qr


def test_shape_is_compact_json_with_version():
    qr = QrPayload(code(), FP, "Alice")
    data = json.loads(qr.to_json())
    assert data == {"v": 1, "code": qr.invite_code, "fp": FP, "name": "Alice"}


@pytest.mark.parametrize("patch", [
    {"v": 2}, {"code": "short"}, {"code": 5}, {"fp": "xyz"}, {"name": ""}, {"name": "n" * 65}, {"addr": ""},
])
def test_invalid_payloads_are_refused_without_quoting_the_code(patch):
    c = code()
    data = {"v": 1, "code": c, "fp": FP, "name": "Alice", **patch}
    with pytest.raises(ValueError) as err:
        QrPayload.from_json(json.dumps(data))
    assert c not in str(err.value)


def test_not_json():
    with pytest.raises(ValueError):
        QrPayload.from_json("{nope")


def test_xeddsa_verifies_libsignal_signatures_and_rejects_tampering():
    from axolotl.util.keyhelper import KeyHelper
    for i in range(20):
        identity = KeyHelper.generateIdentityKeyPair()
        signed = KeyHelper.generateSignedPreKey(identity, i + 1)
        ik, msg, sig = identity.getPublicKey().serialize(), signed.getKeyPair().getPublicKey().serialize(), \
            signed.getSignature()
        assert xeddsa.verify(ik, msg, sig)
        assert not xeddsa.verify(ik, msg[:-1] + bytes([msg[-1] ^ 1]), sig)
        assert not xeddsa.verify(ik, msg, sig[:10] + bytes([sig[10] ^ 1]) + sig[11:])
        other = KeyHelper.generateIdentityKeyPair().getPublicKey().serialize()
        assert not xeddsa.verify(other, msg, sig)
    assert not xeddsa.verify(b"\x05" + b"\0" * 31, b"m", b"\0" * 64)   # wrong length key
    assert not xeddsa.verify(b"\x06" + b"\0" * 32, b"m", b"\0" * 64)   # wrong type byte
