"""cosigner.hdkey_check: embit's HDKey version check by table lookup accepts and refuses
exactly the keys embit's own base58 check does."""
from __future__ import annotations

import io

import pytest
from embit.bip32 import HDError, HDKey
from embit.networks import NETWORKS

from cosigner import hdkey_check

hdkey_check.install()
ROOT = HDKey.from_seed(bytes(range(64)))
PRIVATE, PUBLIC = ROOT.derive("m/48h/1h/0h/2h"), ROOT.derive("m/48h/1h/0h/2h").to_public()
VERSIONS = sorted({v for net in NETWORKS.values() for v in net.values() if isinstance(v, bytes) and len(v) == 4})


def _outcome(init, key, version):
    obj = HDKey.__new__(HDKey)
    try:
        init(obj, key.key, key.chain_code, version, key.depth, key.fingerprint, key.child_number)
    except HDError as err:
        return ("refused", str(err))
    return ("accepted", obj.version, obj.depth, obj.fingerprint, obj.child_number, obj.serialize())


@pytest.mark.parametrize("version", VERSIONS + [b"\x01\x02\x03\x04", b"\xff\xff\xff\xff"])
@pytest.mark.parametrize("key", [PRIVATE, PUBLIC], ids=["private", "public"])
def test_same_verdict_as_embit(version, key):
    assert _outcome(hdkey_check._init, key, version) == _outcome(hdkey_check._original_init, key, version)


def test_the_table_covers_the_networks_we_use_and_both_kinds():
    for net in ("main", "test", "regtest", "signet"):
        assert hdkey_check._KNOWN[NETWORKS[net]["xpub"]] == "pub"
        assert hdkey_check._KNOWN[NETWORKS[net]["xprv"]] == "prv"
    assert HDKey.__init__ is hdkey_check._init


def test_a_private_key_with_a_public_version_is_still_refused():
    with pytest.raises(HDError):
        HDKey(PRIVATE.key, PRIVATE.chain_code, version=NETWORKS["regtest"]["xpub"])
    with pytest.raises(HDError):
        HDKey(PUBLIC.key, PUBLIC.chain_code, version=NETWORKS["main"]["xprv"])


def test_keys_round_trip_and_derive_as_before():
    xpub = PUBLIC.to_base58(version=NETWORKS["regtest"]["xpub"])
    parsed = HDKey.from_string(xpub)
    assert parsed.to_base58() == xpub and parsed.derive([1, 7]).key == PUBLIC.derive([1, 7]).key


def _read(read_from, data: bytes):
    stream = io.BytesIO(data)
    try:
        key = read_from(stream)
    except Exception as err:           # embit raises HDError, IndexError or its EC errors here
        return ("refused", type(err).__name__ if not isinstance(err, HDError) else "HDError")
    return ("accepted", key.version, key.depth, key.fingerprint, key.child_number, key.serialize(), stream.read())


def _serialized(key, version: bytes) -> bytes:
    return version + key.serialize()[4:]


@pytest.mark.parametrize("version", VERSIONS + [b"\x01\x02\x03\x04", b"\xff\xff\xff\xff"])
@pytest.mark.parametrize("key", [PRIVATE, PUBLIC], ids=["private", "public"])
def test_read_from_gives_what_embits_gives(version, key):
    """Whole keys, truncated ones (at every field boundary and inside the key) and keys
    followed by more bytes: the same key, the same bytes left, or a refusal either way."""
    original = _original_reader()
    data = _serialized(key, version)
    for cut in (0, 3, 4, 5, 9, 13, 44, 45, 46, 60, 77, 78):
        sample = data[:cut] + (b"\x07\x08" if cut == 78 else b"")
        got, want = _read(HDKey.read_from, sample), _read(original, sample)
        assert got[0] == want[0], (cut, got, want)
        if got[0] == "accepted":
            assert got == want


def test_psbt_xpubs_parse_without_a_base58_encoding(monkeypatch):
    """A known version is read without embit's second base58 encoding (what the patch saves)."""
    data = _serialized(PUBLIC, NETWORKS["regtest"]["xpub"])
    calls = []
    monkeypatch.setattr(HDKey, "to_base58", lambda self, version=None: calls.append(1) or "xpub")
    assert HDKey.parse(data).key == PUBLIC.key and calls == []


def _original_reader():
    return lambda stream: hdkey_check._original_read_from.__func__(HDKey, stream)
