"""The `inheritance_sweep` rule: how the signing gate decides the one spend a released
claim allows, instead of the account's policy. Pure.

- An owner freeze or a staff freeze denies it (a living owner who froze can also cancel
  the claim; staff freezing an account stops everything that would leave it).
- The claim must be released, proven and not cancelled at this moment (`claim_ok`,
  established by the caller under the account lock).
- The owner's spending rules (limits, delays, approvals, allowlist) do not apply: the
  waiting period was the delay, and a sweep of every coin would exceed any limit.
  The hard fee caps still apply (they are checked by PSBT inspection for every spend).
"""
from __future__ import annotations

from cosigner import policy as engine

RULE = "inheritance_sweep"


def evaluate(intent: engine.Intent, policy: engine.Policy, *, claim_ok: bool) -> engine.Decision:
    reasons = []
    if policy.staff_frozen:
        reasons.append({"rule": "frozen", "by": "staff"})
    if policy.frozen:
        reasons.append({"rule": "frozen", "by": "owner"})
    if not claim_ok:
        reasons.append({"rule": RULE, "refused": "claim_not_released"})
    if reasons:
        return engine.Decision("deny", tuple(reasons), None, policy.version)
    return engine.Decision("approve", ({"rule": RULE, "amount_sat": intent.external_sat},), None, policy.version)
