"""The policy engine: a pure function that decides what the cosigner may sign and says
why. No I/O; time is passed in.

`evaluate(intent, policy, history, now) -> Decision` combines every rule that fires,
most restrictive wins (approve < delay < require_approval < deny). Reasons are
machine-readable dicts naming the rule and its numbers. When a delay and an approval
both fire the action is require_approval and `release_at` still holds: after the
approvals, the spend waits for the delay too.

Velocity accounting is keyed by the outpoints a spend consumes: a history entry that
shares an outpoint with the intent is the spend this intent replaces (RBF) and is not
counted again; entries the caller drops (failed, abandoned, cancelled) stop counting.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

ACTIONS = ("approve", "delay", "require_approval", "deny")
WINDOWS = {"24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7), "30d": dt.timedelta(days=30)}
ELSEWHERE = ("allow", "delay", "deny")         # what happens to non-allowlisted destinations
DEFAULT_DELAY = dt.timedelta(hours=24)
MAX_DELAY = dt.timedelta(days=30)


@dataclass(frozen=True)
class Limit:
    window: str
    max_sat: int


@dataclass(frozen=True)
class AllowEntry:
    address: str
    label: str = ""


@dataclass(frozen=True)
class Approvals:
    above_sat: int                     # spends with external amount above this need approvals
    required: int                      # K
    staff: bool = False                # operator staff may approve (each staff member counts once)
    devices: tuple[str, ...] = ()      # device ids that may approve (e.g. a second phone)


@dataclass(frozen=True)
class Policy:
    version: int = 0
    max_per_tx_sat: int | None = None
    limits: tuple[Limit, ...] = ()
    allowlist: tuple[AllowEntry, ...] = ()
    elsewhere: str = "allow"           # non-allowlisted destinations: allow | delay | deny
    allowlisted_skip_delay: bool = True
    delay_above_sat: int | None = None
    delay_all: bool = False
    delay_seconds: int = int(DEFAULT_DELAY.total_seconds())
    approvals: Approvals | None = None
    max_fee_rate: float | None = None  # sat/vB
    max_fee_sat: int | None = None
    max_fee_share: float | None = None
    frozen: bool = False               # owner's panic freeze
    staff_frozen: bool = False


@dataclass(frozen=True)
class HistoryEntry:
    """A spend that counts against velocity limits: when, how much went out, which
    outpoints it consumed."""
    at: dt.datetime
    external_sat: int
    outpoints: frozenset


@dataclass(frozen=True)
class Intent:
    """What inspection proved about a spend, reduced to what policy needs."""
    external: tuple[tuple[str | None, int], ...]      # (address, sat) of each external output
    fee_sat: int
    fee_rate: float
    outpoints: frozenset
    sweep: bool = False                               # the recovery sweep (passes a freeze)

    @property
    def external_sat(self) -> int:
        return sum(a for _, a in self.external)


@dataclass(frozen=True)
class Decision:
    action: str
    reasons: tuple = field(default=())
    release_at: dt.datetime | None = None
    policy_version: int = 0

    def as_dict(self) -> dict:
        return {"action": self.action, "reasons": list(self.reasons), "policy_version": self.policy_version,
                "release_at": self.release_at.isoformat() if self.release_at else None}


def _worst(a: str, b: str) -> str:
    return a if ACTIONS.index(a) >= ACTIONS.index(b) else b


def used_in_window(history, intent: Intent, window: dt.timedelta, now: dt.datetime) -> int:
    """Satoshis sent after now - window, not counting spends this intent replaces.
    Entries stamped later than `now` count too: a concurrent request that took its clock
    reading before waiting for the account lock must still see what was decided meanwhile."""
    return sum(h.external_sat for h in history
               if h.at > now - window and not (h.outpoints & intent.outpoints))


def evaluate(intent: Intent, policy: Policy, history, now: dt.datetime) -> Decision:
    """Decide. Pure and deterministic for the same inputs."""
    action, reasons, delayed = "approve", [], False

    def fire(act: str, **reason):
        nonlocal action, delayed
        action = _worst(action, act)
        delayed = delayed or act == "delay"
        reasons.append(reason)

    amount = intent.external_sat
    if policy.staff_frozen and not intent.sweep:
        fire("deny", rule="frozen", by="staff")
    if policy.frozen and not intent.sweep:
        fire("deny", rule="frozen", by="owner")
    if policy.max_per_tx_sat is not None and amount > policy.max_per_tx_sat:
        fire("deny", rule="max_per_tx", limit_sat=policy.max_per_tx_sat, amount_sat=amount)
    for lim in policy.limits:
        used = used_in_window(history, intent, WINDOWS[lim.window], now)
        if used + amount > lim.max_sat:
            fire("deny", rule="velocity_limit", window=lim.window, limit_sat=lim.max_sat, used_sat=used,
                 amount_sat=amount)
    if policy.max_fee_rate is not None and intent.fee_rate > policy.max_fee_rate:
        fire("deny", rule="fee_rate_cap", cap=policy.max_fee_rate, fee_rate=intent.fee_rate)
    if policy.max_fee_sat is not None and intent.fee_sat > policy.max_fee_sat:
        fire("deny", rule="fee_cap", cap_sat=policy.max_fee_sat, fee_sat=intent.fee_sat)
    if policy.max_fee_share is not None and amount and intent.fee_sat > policy.max_fee_share * amount:
        fire("deny", rule="fee_share_cap", cap=policy.max_fee_share, fee_sat=intent.fee_sat, amount_sat=amount)

    allowed = {e.address for e in policy.allowlist}
    outside = [addr for addr, _ in intent.external if addr not in allowed]
    all_allowlisted = bool(intent.external) and not outside and bool(allowed)
    if outside and policy.elsewhere != "allow" and not intent.sweep:
        fire("deny" if policy.elsewhere == "deny" else "delay", rule="destination_not_allowlisted",
             addresses=sorted(a or "" for a in outside))
    skip_delay = all_allowlisted and policy.allowlisted_skip_delay
    if not skip_delay:
        if policy.delay_all and amount > 0:
            fire("delay", rule="delay_all", delay_seconds=policy.delay_seconds)
        elif policy.delay_above_sat is not None and amount > policy.delay_above_sat:
            fire("delay", rule="above_delay_threshold", threshold_sat=policy.delay_above_sat, amount_sat=amount,
                 delay_seconds=policy.delay_seconds)
    if policy.approvals is not None and amount > policy.approvals.above_sat:
        fire("require_approval", rule="approval_required", above_sat=policy.approvals.above_sat,
             required=policy.approvals.required, amount_sat=amount)
    release_at = now + dt.timedelta(seconds=policy.delay_seconds) if delayed and action != "deny" else None
    return Decision(action, tuple(reasons), release_at, policy.version)


# -- changes ---------------------------------------------------------------------------
def _most_restrictive_optional(old, new, smaller_is_stricter=True):
    if old is None:
        return new
    if new is None:
        return old
    return min(old, new) if smaller_is_stricter else max(old, new)


def tightened(old: Policy, new: Policy) -> Policy:
    """The part of `new` that may apply at once: per rule, the stricter of old and new.
    Allowlist entries and lifted freezes wait; removed entries go at once."""
    limits = {lim.window: lim.max_sat for lim in old.limits}
    for lim in new.limits:
        limits[lim.window] = min(limits.get(lim.window, lim.max_sat), lim.max_sat)
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
        limits=tuple(Limit(w, m) for w, m in sorted(limits.items())),
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
    )


def rebase(base: dict, target: dict, current: dict) -> dict:
    """Apply a pending change (`base` → `target`, JSON forms) onto the rules in force now.

    The change carries only what it changed: a rule it did not touch, or one that changed
    since it was asked for (a later freeze, staff freeze, tightening), keeps its current
    value. Limits merge per window and the allowlist per address. So a loosening queued
    before a freeze can never lift that freeze."""
    result = dict(current)
    for key in set(base) | set(target) | set(current):
        if key in ("limits", "allowlist"):
            continue
        if current.get(key) == base.get(key):
            result[key] = target.get(key, current.get(key))
    windows = lambda d: {x["window"]: x["max_sat"] for x in d.get("limits") or []}  # noqa: E731
    b, t, c = windows(base), windows(target), windows(current)
    merged = {w: (t.get(w) if c.get(w) == b.get(w) else c.get(w)) for w in set(b) | set(t) | set(c)}
    result["limits"] = [{"window": w, "max_sat": m} for w, m in sorted(merged.items()) if m is not None]
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


def from_dict(d: dict, version: int = 0) -> Policy:
    """Build a Policy from its JSON form (validated by the API schema first)."""
    approvals = d.get("approvals")
    return Policy(
        version=version,
        max_per_tx_sat=d.get("max_per_tx_sat"),
        limits=tuple(Limit(x["window"], x["max_sat"]) for x in sorted(d.get("limits") or [], key=lambda x: x["window"])),
        allowlist=tuple(AllowEntry(x["address"], x.get("label", "")) for x in
                        sorted(d.get("allowlist") or [], key=lambda x: x["address"])),
        elsewhere=d.get("elsewhere", "allow"),
        allowlisted_skip_delay=d.get("allowlisted_skip_delay", True),
        delay_above_sat=d.get("delay_above_sat"),
        delay_all=d.get("delay_all", False),
        delay_seconds=int(d.get("delay_seconds", DEFAULT_DELAY.total_seconds())),
        approvals=Approvals(approvals["above_sat"], approvals["required"], approvals.get("staff", False),
                            tuple(sorted(approvals.get("devices") or ()))) if approvals else None,
        max_fee_rate=d.get("max_fee_rate"),
        max_fee_sat=d.get("max_fee_sat"),
        max_fee_share=d.get("max_fee_share"),
        frozen=d.get("frozen", False),
        staff_frozen=d.get("staff_frozen", False),
    )


def to_dict(p: Policy) -> dict:
    return {
        "max_per_tx_sat": p.max_per_tx_sat,
        "limits": [{"window": x.window, "max_sat": x.max_sat} for x in p.limits],
        "allowlist": [{"address": x.address, "label": x.label} for x in p.allowlist],
        "elsewhere": p.elsewhere,
        "allowlisted_skip_delay": p.allowlisted_skip_delay,
        "delay_above_sat": p.delay_above_sat,
        "delay_all": p.delay_all,
        "delay_seconds": p.delay_seconds,
        "approvals": None if p.approvals is None else {
            "above_sat": p.approvals.above_sat, "required": p.approvals.required, "staff": p.approvals.staff,
            "devices": list(p.approvals.devices)},
        "max_fee_rate": p.max_fee_rate,
        "max_fee_sat": p.max_fee_sat,
        "max_fee_share": p.max_fee_share,
        "frozen": p.frozen,
        "staff_frozen": p.staff_frozen,
    }
