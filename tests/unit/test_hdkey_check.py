"""cosigner.hdkey_check: embit's HDKey version check by table lookup accepts and refuses
exactly the keys embit's own base58 check does."""
from __future__ import annotations

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
