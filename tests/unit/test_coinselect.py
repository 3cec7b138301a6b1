"""Coin selection: Branch-and-Bound finds changeless exact matches, the fallback makes
change above dust, subtract_fee_from splits the fee like Core, and a shortfall is told
in satoshis."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosigner import coinselect as cs
from cosigner import vsize as vs

WS_LEN = 105                                   # wsh(sortedmulti(2, 3 keys))
W = vs.input_weight(WS_LEN)
P2WPKH, P2WSH = 22, 34


def coins(*values: int) -> list[cs.Candidate]:
    return [cs.Candidate(v, W, ref=n) for n, v in enumerate(values)]


def target(*amounts: int, rate: float = 1.0, sffo=(), lens=None) -> cs.Target:
    return cs.Target(tuple(amounts), tuple(lens or [P2WPKH] * len(amounts)), vs.rate_to_kvb(rate),
                     change_input_weight=W, subtract_fee_from=tuple(sffo))


def exact_fee(sel: cs.Selection, t: cs.Target) -> int:
    return vs.fee(sel.vsize, t.rate_kvb)


def test_bnb_finds_the_changeless_exact_match():
    pool = coins(50_000, 31_000, 20_000, 9_000, 7_000)
    t = target(1, rate=2.0)
    ev = {c.ref: cs.effective_value(c, t.rate_kvb) for c in pool}
    fixed = vs.fee(vs.vsize(vs.tx_weight([], t.script_lens)) + 1, t.rate_kvb)
    # pay exactly what coins 1 and 3 are worth after their own fees and the fixed part
    t = target(ev[1] + ev[3] - fixed, rate=2.0)
    sel = cs.select(pool, t)
    assert sel.algorithm == "bnb" and sel.change == 0
    assert sorted(c.ref for c in sel.inputs) == [1, 3]
    assert sel.amounts == t.amounts
    assert exact_fee(sel, t) <= sel.fee <= exact_fee(sel, t) + t.cost_of_change


def test_bnb_prefers_no_change_over_a_single_big_coin():
    pool = coins(1_000_000, 60_000, 40_000)
    t0 = target(1, rate=1.0)
    ev = sum(cs.effective_value(c, t0.rate_kvb) for c in pool[1:])
    fixed = vs.fee(vs.vsize(vs.tx_weight([], t0.script_lens)) + 1, t0.rate_kvb)
    sel = cs.select(pool, target(ev - fixed - 50, rate=1.0))   # 50 sat of slack: within cost_of_change
    assert sel.algorithm == "bnb" and sel.change == 0 and {c.ref for c in sel.inputs} == {1, 2}


def test_change_is_above_dust_and_the_fee_is_exact():
    pool = coins(100_000, 80_000, 3_000)
    t = target(120_000, rate=5.0)
    sel = cs.select(pool, t)
    assert sel.change >= t.min_viable_change >= cs.DUST_SAT
    assert sel.fee == exact_fee(sel, t)
    assert sel.input_value == sum(sel.amounts) + sel.change + sel.fee


def test_leftover_below_dust_goes_to_the_fee_instead_of_a_dust_change():
    pool = coins(100_000)
    t = target(1, rate=1.0)
    plain = vs.fee(vs.vsize(vs.tx_weight([W], t.script_lens)), t.rate_kvb)
    with_change = vs.fee(vs.vsize(vs.tx_weight([W], (*t.script_lens, P2WSH))), t.rate_kvb)
    amount = 100_000 - with_change - (t.min_viable_change - 1)     # change would be one sat too small
    sel = cs.select(pool, target(amount, rate=1.0))
    assert sel.change == 0 and sel.fee == 100_000 - amount and sel.fee > plain


def test_several_outputs():
    pool = coins(40_000, 40_000, 40_000)
    t = target(30_000, 25_000, 10_000, rate=3.0, lens=[P2WPKH, P2WSH, 25])
    sel = cs.select(pool, t)
    assert sel.amounts == (30_000, 25_000, 10_000)
    assert sel.input_value == 65_000 + sel.change + sel.fee and sel.fee >= exact_fee(sel, t)


def test_insufficient_funds_reports_the_shortfall():
    pool = coins(10_000, 5_000)
    t = target(20_000, rate=2.0)
    with pytest.raises(cs.InsufficientFunds) as info:
        cs.select(pool, t)
    err = info.value
    fee_all = vs.fee(vs.vsize(vs.tx_weight([W, W], t.script_lens)), t.rate_kvb)
    assert err.available == 15_000 and err.needed == 20_000 + fee_all
    assert err.shortfall == err.needed - err.available


def test_coins_worth_less_than_their_fee_are_not_used():
    pool = coins(50_000, 100)                   # 100 sat costs more than that to spend at 10 sat/vB
    sel = cs.select(pool, target(20_000, rate=10.0))
    assert [c.ref for c in sel.inputs] == [0]
    with pytest.raises(cs.InsufficientFunds):
        cs.select(coins(100, 150), target(1, rate=10.0))


def test_subtract_fee_from_one_output_without_change():
    pool = coins(30_000, 20_000)
    t = target(50_000, rate=2.0, sffo=[0])
    sel = cs.select(pool, t)
    assert sel.change == 0 and sel.fee == exact_fee(sel, t)
    assert sel.amounts == (50_000 - sel.fee,)


def test_subtract_fee_splits_evenly_first_output_pays_the_remainder():
    pool = coins(200_000)
    t = target(60_000, 40_000, rate=3.3, sffo=[0, 1])
    sel = cs.select(pool, t)
    assert sel.change == 200_000 - 100_000
    reduced = (60_000 - sel.amounts[0], 40_000 - sel.amounts[1])
    assert sum(reduced) == sel.fee == exact_fee(sel, t)
    assert reduced[0] - reduced[1] == sel.fee % 2


def test_subtract_fee_gives_a_sub_dust_excess_back_to_the_recipient():
    pool = coins(50_100)
    t = target(50_000, rate=1.0, sffo=[0])
    sel = cs.select(pool, t)
    assert sel.change == 0 and sel.amounts[0] == 50_100 - sel.fee and sel.fee == exact_fee(sel, t)


def test_subtract_fee_refuses_an_output_that_cannot_pay_it():
    with pytest.raises(cs.AmountTooSmall) as info:
        cs.select(coins(100_000), target(600, rate=5.0, sffo=[0]))
    assert info.value.index == 0


def test_use_all_sweeps_every_coin_into_the_output():
    pool = coins(10_000, 20_000, 30_000)
    t = target(60_000, rate=1.0, sffo=[0])
    sel = cs.select(pool, t, use_all=True)
    assert len(sel.inputs) == 3 and sel.change == 0 and sel.amounts == (60_000 - sel.fee,)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.integers(min_value=600, max_value=5_000_000), min_size=1, max_size=25),
       amount=st.integers(min_value=546, max_value=10_000_000), rate=st.sampled_from([1.0, 1.5, 4.2, 25.0, 180.0]))
def test_every_selection_balances_and_pays_at_least_the_rate(values, amount, rate):
    t = target(amount, rate=rate)
    try:
        sel = cs.select(coins(*values), t)
    except cs.InsufficientFunds as err:
        assert err.shortfall > 0
        return
    assert sel.input_value == sum(sel.amounts) + sel.change + sel.fee
    assert sel.fee >= exact_fee(sel, t)
    assert sel.change == 0 or sel.change >= t.min_viable_change
    if sel.change:
        assert sel.fee == exact_fee(sel, t)
    else:  # a changeless excess is bounded by what change would have cost
        assert sel.fee - exact_fee(sel, t) < t.cost_of_change + t.min_viable_change + t.change_output_fee
