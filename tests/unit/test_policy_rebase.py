"""Pending changes apply as a diff onto the rules in force (cosigner.policy_changes.rebase): a
freeze, a staff freeze or a tightening made after the change was asked for survives;
what the change asked for applies where nobody touched the rule since."""
from __future__ import annotations

from hypothesis import given, strategies as st

from cosigner.policy import Limit, Policy, from_dict, to_dict
from cosigner.policy_changes import rebase


def d(**kw):
    return to_dict(Policy(**kw))


def test_change_applies_where_nothing_moved():
    base, target = d(max_per_tx_sat=100_000), d(max_per_tx_sat=50_000_000)
    assert rebase(base, target, base) == target


def test_freeze_after_the_change_survives():
    base, target = d(max_per_tx_sat=100_000), d(max_per_tx_sat=50_000_000)
    now = d(max_per_tx_sat=100_000, frozen=True, staff_frozen=True)
    out = from_dict(rebase(base, target, now))
    assert out.max_per_tx_sat == 50_000_000 and out.frozen and out.staff_frozen


def test_unfreeze_change_lifts_only_the_freeze_it_was_made_against():
    base, target = d(frozen=True), d(frozen=False)
    assert from_dict(rebase(base, target, base)).frozen is False
    # staff froze meanwhile: the owner's unfreeze does not touch the staff freeze
    out = from_dict(rebase(base, target, d(frozen=True, staff_frozen=True)))
    assert out.frozen is False and out.staff_frozen is True


def test_later_tightening_of_the_same_rule_wins():
    base, target = d(max_per_tx_sat=100_000), d(max_per_tx_sat=50_000_000)
    assert from_dict(rebase(base, target, d(max_per_tx_sat=10_000))).max_per_tx_sat == 10_000


def test_limits_merge_per_window():
    base = d(limits=(Limit("24h", 100_000),))
    target = d(limits=(Limit("24h", 900_000),))
    now = d(limits=(Limit("24h", 100_000), Limit("7d", 200_000)))
    out = from_dict(rebase(base, target, now))
    assert out.limits == (Limit("24h", 900_000), Limit("7d", 200_000))
    # a window the change removes goes; one tightened since stays
    out = from_dict(rebase(d(limits=(Limit("24h", 1),)), d(), d(limits=(Limit("24h", 1),))))
    assert out.limits == ()
    out = from_dict(rebase(d(limits=(Limit("24h", 5),)), d(), d(limits=(Limit("24h", 2),))))
    assert out.limits == (Limit("24h", 2),)


def test_allowlist_merges_per_address():
    entry = lambda a: {"address": a, "label": ""}  # noqa: E731
    base = {**d(), "allowlist": [entry("A")]}
    target = {**d(), "allowlist": [entry("A"), entry("B")]}
    now = {**d(), "allowlist": []}        # A removed since (a tightening): B still arrives, A stays gone
    assert [e["address"] for e in rebase(base, target, now)["allowlist"]] == ["B"]


flags = st.booleans()


@given(flags, flags, flags, flags, st.integers(1, 10**9), st.integers(1, 10**9))
def test_a_freeze_set_after_the_change_always_survives(base_frozen, target_frozen, base_staff, target_staff,
                                                       lo, hi):
    base = d(frozen=base_frozen, staff_frozen=base_staff, max_per_tx_sat=lo)
    target = d(frozen=target_frozen, staff_frozen=target_staff, max_per_tx_sat=hi)
    if not base_frozen:
        assert from_dict(rebase(base, target, {**base, "frozen": True})).frozen
    if not base_staff:
        assert from_dict(rebase(base, target, {**base, "staff_frozen": True})).staff_frozen
