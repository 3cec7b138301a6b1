"""Inheritance errors: one root; each carries a machine-readable `code` and optional
`details`. Messages never quote a share, a key or an email address. HTTP statuses are
chosen in app/errors.py."""
from __future__ import annotations


class InheritanceError(Exception):
    code = "inheritance_error"

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None):
        super().__init__(message)
        if code:
            self.code = code
        self.details = details or {}


class InvalidPlan(InheritanceError):
    """The plan or a beneficiary is refused (400); nothing is stored."""
    code = "invalid_plan"


class PlanNotFound(InheritanceError):
    code = "inheritance_not_configured"


class ChangeNotFound(InheritanceError):
    code = "inheritance_change_not_found"


class NotBeneficiary(InheritanceError):
    """The caller is not a beneficiary of that account's plan (403; the same answer
    whether or not the account exists)."""
    code = "not_a_beneficiary"


class ClaimNotFound(InheritanceError):
    code = "claim_not_found"


class ClaimConflict(InheritanceError):
    """The claim is not in a state that allows this step, or a claim is already open (409)."""
    code = "claim_state_conflict"


class IllegalTransition(ClaimConflict):
    code = "illegal_transition"


class ClaimBlocked(InheritanceError):
    """A cancelled claim blocks new claims by that beneficiary for the account (409,
    `details.blocked_until`)."""
    code = "claim_blocked"


class ClaimClosed(InheritanceError):
    """The claim was cancelled, expired or completed (410)."""
    code = "claim_closed"


class InheritanceSweepError(InheritanceError):
    """The sweep cannot be built or signed now (422)."""
    code = "inheritance_sweep_refused"
