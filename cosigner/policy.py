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

Fiat rules (`max_per_tx` and `limits` given as `{"max": "500.00", "currency": "USD"}`) are
converted with the validated price the caller passes in (`rates`, currency → Rate) at
the moment of the decision: the fiat amount becomes satoshis rounded down, then the rule
is checked like its satoshi form. A rolling window is **re-valued now**: every spend in
the window counts by its satoshis at today's price (as Bitkey does), so spends signed at
different prices mix without stored fiat values, and a price rise tightens the rest of
the window. Fail closed: a missing or stale price makes the rule fire as over the limit
(`deny`, reason `price_unavailable`). A spend that sends nothing out (all change) is
never refused by a fiat rule. The rates used are recorded in the Decision.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from decimal import Decimal

from prices.money import fiat_to_sat_floor, parse_amount, sat_to_fiat

ACTIONS = ("approve", "delay", "require_approval", "deny")
WINDOWS = {"24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7), "30d": dt.timedelta(days=30)}
ELSEWHERE = ("allow", "delay", "deny")         # what happens to non-allowlisted destinations
DEFAULT_DELAY = dt.timedelta(hours=24)
MAX_DELAY = dt.timedelta(days=30)


@dataclass(frozen=True)
class FiatAmount:
    """A limit in a currency: `max` (Decimal, two decimals) of `currency` (ISO 4217)."""
    max: Decimal
    currency: str

    def as_dict(self) -> dict:
        return {"max": str(self.max), "currency": self.currency}


@dataclass(frozen=True)
class Limit:
    """A rolling-window limit in satoshis (`max_sat`) or in fiat (`fiat`). A window may
    carry one limit per unit: (window, currency or "") is its key."""
    window: str
    max_sat: int | None = None
    fiat: FiatAmount | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.window, self.fiat.currency if self.fiat else "")

    @property
    def amount(self):
        return self.fiat.max if self.fiat else self.max_sat

    def as_dict(self) -> dict:
        return {"window": self.window, **self.fiat.as_dict()} if self.fiat else \
            {"window": self.window, "max_sat": self.max_sat}


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
class Verify:
    """Spends sending more than `above_sat` (or the fiat `above`, converted now) need an
    out-of-band confirmation on `channel` (email | totp | either) before they are signed."""
    above_sat: int | None = None
    fiat: FiatAmount | None = None
    channel: str = "either"

    def as_dict(self) -> dict:
        return {"above": self.fiat.as_dict(), "channel": self.channel} if self.fiat else \
            {"above_sat": self.above_sat, "channel": self.channel}


@dataclass(frozen=True)
class Policy:
    version: int = 0
    max_per_tx_sat: int | None = None
    max_per_tx_fiat: FiatAmount | None = None
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
    verify: Verify | None = None       # out-of-band confirmation above a threshold (issue #17)


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
    rates: tuple = field(default=())    # (currency, {"rate", "as_of"}) of the prices fiat rules used
    verify: str | None = None           # the channel an out-of-band confirmation must come from, if needed

    def as_dict(self) -> dict:
        return {"action": self.action, "reasons": list(self.reasons), "policy_version": self.policy_version,
                "release_at": self.release_at.isoformat() if self.release_at else None,
                "rates": dict(self.rates), "verify": self.verify}


def _worst(a: str, b: str) -> str:
    return a if ACTIONS.index(a) >= ACTIONS.index(b) else b


def used_in_window(history, intent: Intent, window: dt.timedelta, now: dt.datetime) -> int:
    """Satoshis sent after now - window, not counting spends this intent replaces.
    Entries stamped later than `now` count too: a concurrent request that took its clock
    reading before waiting for the account lock must still see what was decided meanwhile."""
    return sum(h.external_sat for h in history
               if h.at > now - window and not (h.outpoints & intent.outpoints))


def currencies(policy: Policy) -> set[str]:
    """The currencies the policy's fiat rules name (the prices a decision needs)."""
    named = {lim.fiat.currency for lim in policy.limits if lim.fiat}
    named |= {policy.verify.fiat.currency} if policy.verify and policy.verify.fiat else set()
    return named | ({policy.max_per_tx_fiat.currency} if policy.max_per_tx_fiat else set())


def without_fiat(policy: Policy) -> Policy:
    """`policy` with its fiat rules left out (what can be decided without a price)."""
    return replace(policy, max_per_tx_fiat=None, limits=tuple(lim for lim in policy.limits if lim.fiat is None),
                   verify=policy.verify if policy.verify is None or policy.verify.fiat is None
                   else replace(policy.verify, fiat=None, above_sat=0))


def evaluate(intent: Intent, policy: Policy, history, now: dt.datetime, rates=None) -> Decision:
    """Decide. Pure and deterministic for the same inputs. `rates`: currency → Rate
    (prices.money.Rate: `price` per BTC, `as_of`, `stale`) for the fiat rules; a currency
    missing or stale fails those rules closed."""
    action, reasons, delayed = "approve", [], False
    rates, used_rates = rates or {}, {}

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

    def price_for(cap: FiatAmount, applies_to: str, **where):
        """The usable rate for `cap`, or None after firing `price_unavailable`."""
        rate = rates.get(cap.currency)
        if rate is None or rate.stale:
            fire("deny", rule="price_unavailable", applies_to=applies_to, **where, currency=cap.currency,
                 limit=str(cap.max), price_as_of=rate.as_of.isoformat() if rate is not None else None)
            return None
        used_rates[cap.currency] = rate
        return rate

    cap = policy.max_per_tx_fiat
    if cap is not None and amount > 0 and (rate := price_for(cap, "max_per_tx")) is not None:
        limit_sat = fiat_to_sat_floor(cap.max, rate.price)
        if amount > limit_sat:
            fire("deny", rule="max_per_tx", currency=cap.currency, limit=str(cap.max), rate=str(rate.price),
                 limit_sat=limit_sat, amount_sat=amount, amount=str(sat_to_fiat(amount, rate.price, cap.currency)))
    for lim in policy.limits:
        used = used_in_window(history, intent, WINDOWS[lim.window], now)
        if lim.fiat is None:
            if used + amount > lim.max_sat:
                fire("deny", rule="velocity_limit", window=lim.window, limit_sat=lim.max_sat, used_sat=used,
                     amount_sat=amount)
            continue
        if amount == 0 or (rate := price_for(lim.fiat, "velocity_limit", window=lim.window)) is None:
            continue
        cur, limit_sat = lim.fiat.currency, fiat_to_sat_floor(lim.fiat.max, rate.price)
        if used + amount > limit_sat:
            fire("deny", rule="velocity_limit", window=lim.window, currency=cur, limit=str(lim.fiat.max),
                 rate=str(rate.price), limit_sat=limit_sat, used_sat=used, amount_sat=amount,
                 used=str(sat_to_fiat(used, rate.price, cur)), amount=str(sat_to_fiat(amount, rate.price, cur)))
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
    verify = None
    if policy.verify is not None and amount > 0 and not intent.sweep:
        rule, threshold = policy.verify, policy.verify.above_sat
        if rule.fiat is not None:      # fail closed: without a usable price every spend is verified
            rate = rates.get(rule.fiat.currency)
            threshold = 0 if rate is None or rate.stale else fiat_to_sat_floor(rule.fiat.max, rate.price)
            if threshold:
                used_rates[rule.fiat.currency] = rate
        if amount > threshold:
            verify = rule.channel
            reasons.append({"rule": "verification_required", "channel": rule.channel, "above_sat": threshold,
                            "amount_sat": amount})
    release_at = now + dt.timedelta(seconds=policy.delay_seconds) if delayed and action != "deny" else None
    return Decision(action, tuple(reasons), release_at, policy.version,
                    tuple((c, r.as_dict()) for c, r in sorted(used_rates.items())), verify)


def _fiat(d: dict | None) -> FiatAmount | None:
    return None if d is None else FiatAmount(parse_amount(d["max"]), d["currency"])


def from_dict(d: dict, version: int = 0) -> Policy:
    """Build a Policy from its JSON form (validated by the API schema first)."""
    approvals = d.get("approvals")
    limits = (Limit(x["window"], x.get("max_sat"), _fiat(x) if x.get("currency") else None)
              for x in d.get("limits") or [])
    return Policy(
        version=version,
        max_per_tx_sat=d.get("max_per_tx_sat"),
        max_per_tx_fiat=_fiat(d.get("max_per_tx")),
        limits=tuple(sorted(limits, key=lambda lim: lim.key)),
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
        verify=_verify(d.get("verify")),
    )


def _verify(d: dict | None) -> Verify | None:
    if not d:
        return None
    return Verify(d.get("above_sat"), _fiat(d["above"]) if d.get("above") else None, d.get("channel", "either"))


def to_dict(p: Policy) -> dict:
    return {
        "max_per_tx_sat": p.max_per_tx_sat,
        "max_per_tx": p.max_per_tx_fiat.as_dict() if p.max_per_tx_fiat else None,
        "limits": [x.as_dict() for x in p.limits],
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
        "verify": p.verify.as_dict() if p.verify else None,
    }
