"""Verification errors: one root; each carries a machine-readable `code` and optional
`details`. Messages never quote a token, a code or an e-mail address."""
from __future__ import annotations


class VerificationError(Exception):
    code = "verification_error"

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None):
        super().__init__(message)
        if code:
            self.code = code
        self.details = details or {}


class InvalidChannel(VerificationError):
    """Bad input for a channel (not an e-mail address, unknown kind)."""
    code = "invalid_channel"


class ChannelMissing(VerificationError):
    """The account has no active channel of the kind asked for."""
    code = "verification_channel_missing"


class ChannelStateError(VerificationError):
    """The channel is not in a state that allows this (nothing pending, already enrolled)."""
    code = "channel_state"


class CodeRejected(VerificationError):
    """A wrong, expired or reused code; `details.attempts_left` says how many remain."""
    code = "verification_code_rejected"


class RequestNotFound(VerificationError):
    code = "verification_not_found"


class RequestClosed(VerificationError):
    """The request was already confirmed, cancelled or expired."""
    code = "verification_closed"


class LinkInvalid(VerificationError):
    """An unknown, used or expired link token (the page says no more than that)."""
    code = "link_invalid"
