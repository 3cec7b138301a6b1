"""Messaging errors: one root for the package. Each carries a machine-readable `code`;
app/errors.py maps the classes to HTTP statuses."""
from __future__ import annotations


class MessagingError(Exception):
    """Root of every error the messaging package raises."""
    code = "messaging_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code


class QuotaExceeded(MessagingError):
    """A per-device quota (pending invites, contacts) is used up; `details` has the limit."""
    code = "quota_exceeded"

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None):
        super().__init__(message, code=code)
        self.details = details or {}


class TooLarge(MessagingError):
    """A field over its documented size (422 validation_error, `details` {field, max_bytes})."""
    code = "validation_error"

    def __init__(self, message: str, *, field: str, max_bytes: int):
        super().__init__(message)
        self.details = {"field": field, "max_bytes": max_bytes}


class InvalidKeys(MessagingError):
    """A key upload is malformed (bad encoding, bad signature, too many keys)."""
    code = "invalid_keys"


class KeysNotFound(MessagingError):
    """The target device has not uploaded prekeys yet."""
    code = "keys_not_found"


class InvalidEnvelope(MessagingError):
    code = "invalid_envelope"


class RecipientNotFound(MessagingError):
    """No active device with this id (unknown or revoked)."""
    code = "unknown_recipient"


class NotPermitted(MessagingError):
    """The sender may not reach this device (not contacts, no system rule allows it)."""
    code = "not_permitted"


class InviteNotFound(MessagingError):
    """Unknown, already used, or malformed invite code (indistinguishable on purpose)."""
    code = "invite_not_found"


class InviteExpired(MessagingError):
    code = "invite_expired"


class OwnInvite(MessagingError):
    code = "own_invite"


class ContactNotFound(MessagingError):
    code = "contact_not_found"


class PushError(MessagingError):
    """Root of push delivery failures."""
    code = "push_error"


class TransientPushError(PushError):
    """Worth retrying (429, 5xx, network). `retry_after` in seconds when the provider said."""
    code = "push_transient"

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentPushError(PushError):
    """Retrying will not help (bad credentials, malformed request)."""
    code = "push_permanent"


class InvalidRequest(MessagingError):
    """Malformed input that is not a key or an envelope (display names, …)."""
    code = "invalid_request"
