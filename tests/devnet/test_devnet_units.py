"""White-box checks of devnet's pure helpers (no node): Core's descriptor checksum
vectors, BIP34 heights, JSON amounts, coin selection invariants."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from devnet import coinselect as cs
from devnet.chain import bip34_push, genesis, merkle_root, subsidy
from devnet.descriptors import checksum
from devnet.encoding import btc, dumps, parse_amount
from devnet.errors import RPCFailure

# From Bitcoin Core's descriptor documentation and test/functional/rpc_getdescriptorinfo.py
CORE_CHECKSUMS = [
    ("addr(mkmZxiEcEd8ZqjQWVZuC6so5dFMKEFpN2j)", "02wpgw69"),
    ("pk(0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798)", "gn28ywm7"),
    ("pkh(02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5)", "8fhd9pwu"),
    ("wpkh(02f9308a019258c31049344f85f89d5229b531c845836f99b08601f113bce036f9)", "8zl0zxma"),
    ("sh(wpkh(03fff97bd5755eeea420453a14355235d382f6472f8568a18b2f057a1460297556))", "qkrrc7je"),
    ("sh(wsh(pkh(02e493dbf1c10d80f3581e4904930b1404cc6c13900ee0758474fa94abe8c4cd13)))", "2wtr0ej5"),
]


@pytest.mark.parametrize("desc,expected", CORE_CHECKSUMS)
def test_descriptor_checksums_match_core_vectors(desc, expected):
    assert checksum(desc) == expected


def test_genesis_and_consensus_constants():
    g = genesis()
    assert g.hash == "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    assert merkle_root([bytes.fromhex(g.txs[0].txid)[::-1]]) == g.merkle
    assert subsidy(149) == 50 * 10 ** 8 and subsidy(150) == 25 * 10 ** 8 and subsidy(300) == 1_250_000_000
    assert bip34_push(1) == b"\x51" and bip34_push(16) == b"\x60"
    assert bip34_push(17) == b"\x01\x11" and bip34_push(128) == b"\x02\x80\x00"


def test_amounts_are_json_numbers_with_8_decimals():
    assert dumps({"a": btc(5_000_000_000), "b": btc(1), "c": btc(0)}) == \
        '{"a": 50.00000000, "b": 0.00000001, "c": 0.00000000}'
    assert parse_amount(Decimal("0.1")) == 10_000_000
    for bad in ("x", -1, Decimal("0.000000001"), True, None):
        with pytest.raises(RPCFailure) as exc:
            parse_amount(bad)
        assert exc.value.code == -3


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.integers(min_value=1_000, max_value=10 ** 9), min_size=1, max_size=60),
       target=st.integers(min_value=1_000, max_value=2 * 10 ** 9),
       rate=st.integers(min_value=1, max_value=200))
def test_coin_selection_pays_target_and_fee_exactly(values, target, rate):
    cands = [cs.Candidate(v, 68, i) for i, v in enumerate(values)]
    try:
        sel = cs.select(cands, target, rate, 11 + 31, 31)
    except cs.InsufficientFunds:
        spendable = sum(v - 68 * rate for v in values if v > 68 * rate)
        assert spendable < target + (11 + 31) * rate + 1        # really not enough
        return
    total_in = sum(c.value for c in sel.chosen)
    assert total_in == target + sel.fee + sel.change             # value conservation
    vsize = 11 + 31 + 68 * len(sel.chosen) + (31 if sel.change else 0)
    assert sel.fee >= vsize * rate                               # pays at least the rate
    assert sel.change == 0 or sel.change >= cs.MIN_CHANGE
    assert len({c.ref for c in sel.chosen}) == len(sel.chosen)
