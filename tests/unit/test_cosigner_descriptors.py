"""Account keys and descriptors: validation, templates, checksums (Core's algorithm)."""
from __future__ import annotations

import pytest
from embit.descriptor import Descriptor
from embit.descriptor.checksum import add_checksum
from embit.networks import NETWORKS

from cosigner import descriptors as d
from cosigner.errors import InvalidDescriptor, InvalidKey
from tests.unit.cosigner_kit import NET, Account, random_account_key, seeded_root


def test_checksums_match_bitcoin_core_vectors():
    # from BIP-380 / Bitcoin Core's descriptor documentation
    assert add_checksum("raw(deadbeef)") == "raw(deadbeef)#89f8spxm"
    assert add_checksum("addr(mkmZxiEcEd8ZqjQWVZuC6so5dFMKEFpN2j)") == "addr(mkmZxiEcEd8ZqjQWVZuC6so5dFMKEFpN2j)#02wpgw69"


def test_2of3_template_shape_and_checksum():
    a = Account()
    recv, change = a.desc.receive, a.desc.change
    body, checksum = recv.split("#")
    assert add_checksum(body) == recv and len(checksum) == 8
    assert body.startswith("wsh(sortedmulti(2,[") and body.count("/0/*") == 3
    assert change.split("#")[0] == body.replace("/0/*", "/1/*")
    for k in a.keys:
        assert f"[{k.fingerprint}/48h/1h/0h/2h]{k.xpub}/0/*" in body


def test_decaying_template_uses_a_separate_branch_for_the_timelock_key():
    a = Account("2of3_decaying", 52_560)
    body = a.desc.receive.split("#")[0]
    rec = a.keys[1]
    assert body.startswith("wsh(or_d(multi(2,")
    assert f"and_v(v:pkh({rec.origin}{rec.xpub}/2/*),older(52560))" in body
    assert "/3/*" in a.desc.change and "/2/*" not in a.desc.change


def test_address_derivation_is_deterministic_and_bech32m_free():
    a = Account()
    first = d.address(a.desc.receive, 0, NET)
    assert first.startswith("bcrt1q") and len(first) == 64
    assert first == Descriptor.from_string(a.desc.receive.split("#")[0]).derive(0).address(NETWORKS[NET])
    assert d.address(a.desc.receive, 1, NET) != first


def test_parse_key_accepts_h_and_apostrophe_and_normalizes():
    _, k = random_account_key()
    assert d.parse_key(k.xpub, k.origin.replace("h", "'"), NET) == k


@pytest.mark.parametrize("make,code", [
    (lambda r, k: (r.to_base58(), k.origin), "private_key_sent"),
    (lambda r, k: ("L1aW4aubDFB7yfras2S1mN3bqg9nwySY8nkoLmJebSLD5BWv3ENZ", k.origin), "private_key_sent"),
    (lambda r, k: (k.xpub, "[deadbeef/48h/0h/0h/2h]"), "invalid_origin"),     # mainnet coin type on regtest
    (lambda r, k: (k.xpub, "deadbeef/44h/1h/0h/0h"), "invalid_origin"),
    (lambda r, k: (k.xpub, "[xyz/48h/1h/0h/2h]"), "invalid_origin"),
    (lambda r, k: (r.to_public().to_base58(version=NETWORKS["main"]["xpub"]), k.origin), "wrong_network"),
    (lambda r, k: (r.to_public().to_base58(), k.origin), "origin_mismatch"),  # depth 0 key
    (lambda r, k: ("tpubD6NzVbkrYhZ4XgiXtGrdW5XDAPFCL9h7we1vwNCpn8tGbBcgfVYjXyZ", k.origin), "invalid_xpub"),
])
def test_bad_keys_are_refused_with_a_code(make, code):
    r, k = random_account_key()
    xpub, origin = make(r, k)
    with pytest.raises(InvalidKey) as info:
        d.parse_key(xpub, origin, NET)
    assert info.value.code == code
    assert r.to_base58() not in str(info.value)  # never echoes private material


def test_duplicate_keys_are_refused():
    _, k1 = random_account_key()
    _, k2 = random_account_key()
    with pytest.raises(InvalidDescriptor) as info:
        d.build("2of3", k1, k1, k2)
    assert info.value.code == "duplicate_keys"


@pytest.mark.parametrize("template,decay,code", [
    ("2of3_decaying", 0, "invalid_decay_blocks"), ("2of3_decaying", 65_536, "invalid_decay_blocks"),
    ("2of3_decaying", None, "invalid_decay_blocks"), ("3of5", None, "invalid_template"),
])
def test_bad_templates(template, decay, code):
    keys = [random_account_key()[1] for _ in range(3)]
    with pytest.raises(InvalidDescriptor) as info:
        d.build(template, *keys, decay_blocks=decay)
    assert info.value.code == code


def test_server_key_origin_is_bip48():
    root = seeded_root("srv")
    k = d.server_key(root, NET)
    assert k.origin == f"[{root.my_fingerprint.hex()}/48h/1h/0h/2h]" and k.xpub.startswith("tpub")
    assert d.server_key(root, "main").xpub.startswith("xpub") and d.server_key(root, "main").path == "48h/0h/0h/2h"


def test_parsed_descriptors_are_cached_and_deriving_leaves_them_unchanged():
    from cosigner.descriptors import parse_descriptor
    from tests.unit.cosigner_kit import Account
    text = Account("2of3_decaying", 144, label="cache").desc.receive
    first = parse_descriptor(text)
    assert parse_descriptor(text) is first and parse_descriptor(text.split("#")[0]) is not None
    before = first.to_string()
    scripts = [first.derive(i).script_pubkey().data for i in (0, 5, 0)]
    assert scripts[0] == scripts[2] != scripts[1] and first.to_string() == before
