"""The privileged actions of an account, in one table (Bitkey's approach): which wait
out a delay, which need an out-of-band confirmation on the owner's second channel, and
which need both. The code paths look their action up here (`rule(action)`) instead of
deciding per path; README.md renders `markdown_table()` (tests/unit/test_verification_units.py
keeps the two in agreement).

`delay`: the action takes effect only after POLICY_LOOSEN_DELAY (at least one hour),
announced to the owner's devices and cancellable. `oob`: once the account has an active
channel, the action also waits for a confirmation on it (the e-mailed page or a TOTP
code) and can be cancelled from there; a request left unconfirmed for VERIFY_TTL cancels
the action. `enforced_in` names the module that consults the row; an entry marked
`planned` is listed for the features being built (nothing enforces it yet).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Privileged:
    action: str
    delay: bool
    oob: bool
    what: str
    enforced_in: str          # the module that consults this row, or "planned: …"

    @property
    def enforced(self) -> bool:
        return not self.enforced_in.startswith("planned")


PRIVILEGED: tuple[Privileged, ...] = (
    Privileged("spend.verify", False, True, "a spend above the policy's `verify` threshold (sweeps exempt)",
               "cosigner/gate.py"),
    Privileged("policy.loosen", True, True, "a loosening policy change (a raised or removed limit, a new "
               "allowlist entry, a shorter delay, a weaker `verify` rule)", "cosigner/policy_service.py"),
    Privileged("policy.add_approver", True, True, "adding an approver device to the approvals rule",
               "cosigner/policy_service.py"),
    Privileged("account.unfreeze", True, True, "lifting the owner's panic freeze", "cosigner/policy_service.py"),
    Privileged("channel.add_first", False, False, "registering the account's first channel (confirmed by its own "
               "code; nothing protects the account yet)", "verification/channels.py"),
    Privileged("channel.add", True, True, "adding a channel when one is in force (a thief's own authenticator "
               "must not confirm under `either`)", "verification/channels.py"),
    Privileged("channel.replace", True, True, "replacing the verification e-mail address or authenticator",
               "verification/channels.py"),
    Privileged("channel.remove", True, True, "removing a verification channel", "verification/channels.py"),
    Privileged("recovery.setup_first", False, False, "registering the account's first recovery setup (nothing "
               "to protect yet)", "recovery/setup.py"),
    Privileged("recovery.replace_setup", True, True, "replacing the recovery setup in force: its e-mail address, "
               "holders, scheme or the operator's share (void if the account is frozen, recovered or under a "
               "verified recovery when it would apply)", "recovery/setup_changes.py"),
    Privileged("inheritance.add_beneficiary", True, True, "adding a beneficiary to the inheritance plan",
               "inheritance/plans.py"),
    Privileged("inheritance.shorten_wait", True, True, "shortening the inheritance waiting period",
               "inheritance/plans.py"),
)
_BY_NAME = {p.action: p for p in PRIVILEGED}


def rule(action: str) -> Privileged:
    """The row of `action`; KeyError for an action not in the table (a programming error:
    every privileged path must be listed)."""
    return _BY_NAME[action]


def markdown_table() -> str:
    """The table as README.md shows it."""
    yes = lambda flag: "yes" if flag else "—"  # noqa: E731
    lines = ["| action | delay | out-of-band confirmation | what | enforced in |",
             "|---|---|---|---|---|"]
    lines += [f"| `{p.action}` | {yes(p.delay)} | {yes(p.oob)} | {p.what} | {p.enforced_in} |" for p in PRIVILEGED]
    return "\n".join(lines)
