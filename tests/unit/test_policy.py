"""The policy engine: every rule alone and combined, most restrictive wins, boundaries,
RBF not double counted, sliding windows (clock injected), and change classification."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings, strategies as st

from cosigner.policy import (ACTIONS, AllowEntry, Approvals, HistoryEntry, Intent, Limit, Policy, evaluate,
                             from_dict, to_dict)
from cosigner.policy_changes import loosens, tightened

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.timezone.utc)
A, B = "bcrt1qaaa", "bcrt1qbbb"


def intent(amount=100_000, to=A, fee=500, rate=2.0, outpoints=("t1:0",), sweep=False):
    return Intent(((to, amount),), fee, rate, frozenset(outpoints), sweep)


def hist(hours_ago, amount, outpoints=("old:0",)):
    return HistoryEntry(NOW - dt.timedelta(hours=hours_ago), amount, frozenset(outpoints))


def rules(decision):
    return [r["rule"] for r in decision.reasons]


def test_no_rules_approves():
    d = evaluate(intent(), Policy(), [], NOW)
    assert (d.action, d.reasons, d.release_at) == ("approve", (), None)


@pytest.mark.parametrize("amount,action", [(100_000, "approve"), (100_001, "deny")])
def test_max_per_tx_boundary(amount, action):
    d = evaluate(intent(amount), Policy(max_per_tx_sat=100_000), [], NOW)
    assert d.action == action
    if action == "deny":
        assert d.reasons == ({"rule": "max_per_tx", "limit_sat": 100_000, "amount_sat": amount},)


def test_velocity_limit_counts_the_window_only():
    p = Policy(limits=(Limit("24h", 300_000),))
    history = [hist(1, 150_000), hist(23.9, 50_000), hist(24.1, 500_000)]
    assert evaluate(intent(100_000), p, history, NOW).action == "approve"        # 200k + 100k = limit
    d = evaluate(intent(100_001), p, history, NOW)
    assert d.action == "deny" and d.reasons[0] == {"rule": "velocity_limit", "window": "24h", "limit_sat": 300_000,
                                                   "used_sat": 200_000, "amount_sat": 100_001}


def test_window_slides_with_the_clock():
    p = Policy(limits=(Limit("24h", 100_000),))
    history = [hist(0, 100_000)]
    assert evaluate(intent(1), p, history, NOW).action == "deny"
    later = NOW + dt.timedelta(hours=24)
    assert evaluate(intent(1), p, history, later).action == "approve"


def test_rbf_replacement_is_not_counted_twice():
    p = Policy(limits=(Limit("24h", 150_000),))
    original = hist(0.5, 100_000, outpoints=("t1:0", "t2:1"))
    replacement = intent(100_000, outpoints=("t1:0", "t2:1"))
    assert evaluate(replacement, p, [original], NOW).action == "approve"
    unrelated = intent(100_000, outpoints=("t9:0",))
    assert evaluate(unrelated, p, [original], NOW).action == "deny"


def test_allowlist_elsewhere_and_skip_delay():
    p = Policy(allowlist=(AllowEntry(A, "exchange"),), elsewhere="deny", delay_all=True)
    assert evaluate(intent(to=A), p, [], NOW).action == "approve"           # allowlisted: no delay
    d = evaluate(intent(to=B), p, [], NOW)
    assert d.action == "deny" and "destination_not_allowlisted" in rules(d)
    p2 = Policy(allowlist=(AllowEntry(A),), elsewhere="delay", delay_seconds=3600)
    d2 = evaluate(intent(to=B), p2, [], NOW)
    assert d2.action == "delay" and d2.release_at == NOW + dt.timedelta(hours=1)


def test_delay_threshold_and_delay_all():
    p = Policy(delay_above_sat=50_000, delay_seconds=7200)
    assert evaluate(intent(50_000), p, [], NOW).action == "approve"
    d = evaluate(intent(50_001), p, [], NOW)
    assert d.action == "delay" and d.release_at == NOW + dt.timedelta(hours=2)
    assert evaluate(intent(1), Policy(delay_all=True), [], NOW).action == "delay"


def test_approvals_above_threshold_keep_the_delay():
    p = Policy(approvals=Approvals(above_sat=10_000, required=1, devices=("dev_2",)), delay_above_sat=0,
               delay_seconds=60)
    d = evaluate(intent(20_000), p, [], NOW)
    assert d.action == "require_approval"
    assert set(rules(d)) == {"approval_required", "above_delay_threshold"}
    assert d.release_at == NOW + dt.timedelta(seconds=60)


@pytest.mark.parametrize("policy,rule", [
    (Policy(max_fee_rate=10), "fee_rate_cap"), (Policy(max_fee_sat=400), "fee_cap"),
    (Policy(max_fee_share=0.001), "fee_share_cap")])
def test_fee_caps(policy, rule):
    d = evaluate(intent(fee=500, rate=11.0), policy, [], NOW)
    assert d.action == "deny" and rules(d) == [rule]


def test_freeze_blocks_everything_but_the_sweep():
    for p in (Policy(frozen=True), Policy(staff_frozen=True)):
        assert evaluate(intent(1), p, [], NOW).action == "deny"
        assert evaluate(intent(1, sweep=True), p, [], NOW).action == "approve"


def test_most_restrictive_wins_and_all_reasons_are_reported():
    p = Policy(max_per_tx_sat=10, delay_all=True, approvals=Approvals(0, 1, staff=True))
    d = evaluate(intent(100), p, [], NOW)
    assert d.action == "deny" and d.release_at is None
    assert set(rules(d)) == {"max_per_tx", "delay_all", "approval_required"}


policies = st.builds(
    Policy,
    max_per_tx_sat=st.none() | st.integers(0, 10**6),
    limits=st.lists(st.builds(Limit, st.sampled_from(["24h", "7d", "30d"]), st.integers(0, 10**6)),
                    max_size=3, unique_by=lambda x: x.window).map(lambda xs: tuple(sorted(xs, key=lambda x: x.window))),
    delay_above_sat=st.none() | st.integers(0, 10**6),
    delay_all=st.booleans(),
    frozen=st.booleans(),
    max_fee_sat=st.none() | st.integers(0, 10_000),
)
histories = st.lists(st.builds(HistoryEntry, st.integers(0, 40 * 24).map(lambda h: NOW - dt.timedelta(hours=h)),
                               st.integers(0, 10**6), st.just(frozenset({"h:0"}))), max_size=8)


@settings(max_examples=200, deadline=None)
@given(p=policies, h=histories, amount=st.integers(0, 2 * 10**6), fee=st.integers(0, 20_000))
def test_properties(p, h, amount, fee):
    i = intent(amount, fee=fee)
    d = evaluate(i, p, h, NOW)
    assert d.action in ACTIONS
    # each rule alone never decides more strictly than all of them together
    assert ACTIONS.index(d.action) >= max([ACTIONS.index(evaluate(i, Policy(), h, NOW).action)])
    # adding a rule never loosens the decision
    stricter = Policy(**{**p.__dict__, "max_per_tx_sat": 0})
    assert ACTIONS.index(evaluate(i, stricter, h, NOW).action) >= ACTIONS.index(d.action) or amount == 0
    # an approve decision respects every limit
    if d.action == "approve":
        assert p.max_per_tx_sat is None or amount <= p.max_per_tx_sat
        assert not p.frozen
    # pure: same inputs, same output
    assert evaluate(i, p, h, NOW) == d


@settings(max_examples=200, deadline=None)
@given(old=policies, new=policies)
def test_tightened_part_never_loosens_and_round_trips(old, new):
    now_part = tightened(old, new)
    assert not loosens(old, now_part)
    assert from_dict(to_dict(new)) == new


def test_loosening_classification():
    base = Policy(max_per_tx_sat=100, limits=(Limit("24h", 1000),), frozen=True)
    assert loosens(base, Policy(max_per_tx_sat=200, limits=(Limit("24h", 1000),), frozen=True))
    assert loosens(base, Policy(max_per_tx_sat=100, limits=(), frozen=True))
    assert loosens(base, Policy(max_per_tx_sat=100, limits=(Limit("24h", 1000),), frozen=False))
    assert not loosens(base, Policy(max_per_tx_sat=50, limits=(Limit("24h", 500),), frozen=True))
    assert loosens(Policy(), Policy(allowlist=(AllowEntry(A),)))
    two = Policy(approvals=Approvals(0, 1, devices=("d1",)))
    assert loosens(two, Policy(approvals=Approvals(0, 1, devices=("d1", "d2"))))
    assert not loosens(two, Policy(approvals=Approvals(0, 1, devices=())))  # removing an approver tightens


def test_entries_stamped_after_now_still_count():
    """A request whose clock was read before it waited for the account lock must see
    spends decided meanwhile (regression: they were skipped as 'future')."""
    p = Policy(limits=(Limit("24h", 100_000),))
    meanwhile = HistoryEntry(NOW + dt.timedelta(milliseconds=30), 100_000, frozenset({"x:0"}))
    assert evaluate(intent(1), p, [meanwhile], NOW).action == "deny"
