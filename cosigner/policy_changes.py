"""Policy changes: what part of a new policy may apply at once (`tightened`), whether a
change loosens anything (`loosens`, so it must wait), and how a pending change applies
as a diff onto the rules in force when its time comes (`rebase`). Pure; no I/O.

Tightening is immediate and loosening waits (cosigner.policy_service): per rule the
stricter of old and new applies now; adding an approver, an allowlist entry, lifting a
freeze, raising or removing a limit or the `verify` rule all wait.
"""
from __future__ import annotations

from dataclasses import replace

from cosigner.policy import ELSEWHERE, Approvals, FiatAmount, Policy, Verify


def _most_restrictive_optional(old, new, smaller_is_stricter=True):
    if old is None:
        return new
    if new is None:
        return old
    return min(old, new) if smaller_is_stricter else max(old, new)


def _stricter_fiat(old: FiatAmount | None, new: FiatAmount | None) -> FiatAmount | None:
    """Adding a fiat cap or lowering it tightens; removing it, raising it or changing its
    currency (not comparable without a price) waits."""
    if old is None or new is None:
        return old or new
    return new if new.currency == old.currency and new.max < old.max else old


def tightened(old: Policy, new: Policy) -> Policy:
    """The part of `new` that may apply at once: per rule, the stricter of old and new.
    Allowlist entries and lifted freezes wait; removed entries go at once. Limits compare
    per (window, unit): a new fiat limit on a window that has a satoshi limit applies at
    once next to it; removing the satoshi one waits."""
    limits = {lim.key: lim for lim in old.limits}
    for lim in new.limits:
        if lim.key not in limits or lim.amount < limits[lim.key].amount:
            limits[lim.key] = lim
    old_entries = {e.address: e for e in old.allowlist}
    new_addresses = {e.address for e in new.allowlist}
    allowlist = tuple(e for a, e in old_entries.items() if a in new_addresses)
    elsewhere = max(old.elsewhere, new.elsewhere, key=ELSEWHERE.index)
    approvals = old.approvals
    if new.approvals is not None:
        if old.approvals is None:
            approvals = new.approvals
        else:
            # adding an approver loosens (a thief could add their own device): only
            # approvers present in both apply now
            approvals = Approvals(min(old.approvals.above_sat, new.approvals.above_sat),
                                  max(old.approvals.required, new.approvals.required),
                                  old.approvals.staff and new.approvals.staff,
                                  tuple(d for d in new.approvals.devices if d in old.approvals.devices))
    return replace(
        new, version=old.version,
        max_per_tx_sat=_most_restrictive_optional(old.max_per_tx_sat, new.max_per_tx_sat),
        max_per_tx_fiat=_stricter_fiat(old.max_per_tx_fiat, new.max_per_tx_fiat),
        limits=tuple(limits[k] for k in sorted(limits)),
        allowlist=allowlist if old.allowlist or new.allowlist else (),
        elsewhere=elsewhere,
        allowlisted_skip_delay=old.allowlisted_skip_delay and new.allowlisted_skip_delay,
        delay_above_sat=_most_restrictive_optional(old.delay_above_sat, new.delay_above_sat),
        delay_all=old.delay_all or new.delay_all,
        delay_seconds=max(old.delay_seconds, new.delay_seconds),
        approvals=approvals,
        max_fee_rate=_most_restrictive_optional(old.max_fee_rate, new.max_fee_rate),
        max_fee_sat=_most_restrictive_optional(old.max_fee_sat, new.max_fee_sat),
        max_fee_share=_most_restrictive_optional(old.max_fee_share, new.max_fee_share),
        frozen=old.frozen or new.frozen,
        staff_frozen=old.staff_frozen or new.staff_frozen,
        verify=_stricter_verify(old.verify, new.verify),
    )


def _stricter_verify(old: Verify | None, new: Verify | None) -> Verify | None:
    """Adding the rule, lowering its threshold (same unit) or naming one channel instead
    of either tightens; removing it, raising it, changing unit or channel waits."""
    if old is None or new is None:
        return old or new
    channel = new.channel if new.channel == old.channel or old.channel == "either" else old.channel
    if (old.fiat is None) != (new.fiat is None) or (old.fiat and old.fiat.currency != new.fiat.currency):
        return replace(old, channel=channel)
    if old.fiat is None:
        return Verify(min(old.above_sat, new.above_sat), None, channel)
    return Verify(None, new.fiat if new.fiat.max < old.fiat.max else old.fiat, channel)


def rebase(base: dict, target: dict, current: dict) -> dict:
    """Apply a pending change (`base` → `target`, JSON forms) onto the rules in force now.

    The change carries only what it changed: a rule it did not touch, or one that changed
    since it was asked for (a later freeze, staff freeze, tightening), keeps its current
    value. Limits merge per (window, currency) and the allowlist per address. So a
    loosening queued before a freeze can never lift that freeze."""
    result = dict(current)
    for key in set(base) | set(target) | set(current):
        if key in ("limits", "allowlist"):
            continue
        if current.get(key) == base.get(key):
            result[key] = target.get(key, current.get(key))
    windows = lambda d: {(x["window"], x.get("currency") or ""): x for x in d.get("limits") or []}  # noqa: E731
    b, t, c = windows(base), windows(target), windows(current)
    merged = {k: (t.get(k) if c.get(k) == b.get(k) else c.get(k)) for k in set(b) | set(t) | set(c)}
    result["limits"] = [merged[k] for k in sorted(merged) if merged[k] is not None]
    entries = lambda d: {x["address"]: x for x in d.get("allowlist") or []}  # noqa: E731
    b, t, c = entries(base), entries(target), entries(current)
    kept = {a: e for a, e in c.items() if not (a in b and a not in t)}
    kept.update({a: e for a, e in t.items() if a not in b and a not in kept})
    result["allowlist"] = [kept[a] for a in sorted(kept)]
    return result


def same_rules(a: Policy, b: Policy) -> bool:
    return replace(a, version=0) == replace(b, version=0)


def loosens(old: Policy, new: Policy) -> bool:
    """True when `new` relaxes anything `old` enforces (so it must wait)."""
    return not same_rules(tightened(old, new), new)
