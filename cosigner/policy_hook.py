"""The policy hook: the one place the spend flow asks "may the server sign this?".

This version approves everything that passed PSBT inspection (whose hard safety checks
hold for every spend); the policy-engine issue replaces `decide` with the rule engine.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

ACTIONS = ("approve", "delay", "require_approval", "deny")


@dataclass(frozen=True)
class Decision:
    action: str
    reasons: tuple = field(default=())
    release_at: dt.datetime | None = None

    def as_dict(self) -> dict:
        return {"action": self.action, "reasons": list(self.reasons),
                "release_at": self.release_at.isoformat() if self.release_at else None}


def decide(intent, account, now: dt.datetime) -> Decision:
    """Approve: no account policy exists yet."""
    return Decision("approve", ())


def summary(account) -> dict:
    """The policy summary returned with an account."""
    return {"rules": [], "hard_caps": "fee caps apply to every spend", "frozen": False}
