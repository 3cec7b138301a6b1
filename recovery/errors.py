"""Recovery errors: one root; each carries a machine-readable `code` and optional
`details`. Messages never quote a share, an OTP or an email address."""
from __future__ import annotations


class RecoveryError(Exception):
    code = "recovery_error"

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None):
        super().__init__(message)
        if code:
            self.code = code
        self.details = details or {}


class InvalidScheme(RecoveryError):
    """The SLIP-39 scheme, a holder entry or a share is malformed or contradicts the scheme."""
    code = "invalid_scheme"


class InvalidShare(RecoveryError):
    code = "invalid_share"


class NotConfigured(RecoveryError):
    code = "recovery_not_configured"


class CaseNotFound(RecoveryError):
    code = "case_not_found"


class CaseStateError(RecoveryError):
    """The case is not in a state that allows this step."""
    code = "case_state_conflict"


class IllegalTransition(CaseStateError):
    code = "illegal_transition"


class CaseClosed(RecoveryError):
    """The case expired, failed or was cancelled."""
    code = "case_closed"


class OtpRejected(RecoveryError):
    code = "otp_invalid"


class TooSoon(RecoveryError):
    code = "otp_resend_cooldown"


class NotHolder(RecoveryError):
    code = "not_a_holder"


class ProofInvalid(RecoveryError):
    code = "proof_invalid"


class StaffConflict(RecoveryError):
    code = "staff_approval_conflict"


class BackupError(RecoveryError):
    code = "invalid_backup"


class BackupNotFound(RecoveryError):
    code = "backup_not_found"


class BackupConflict(RecoveryError):
    code = "backup_version_conflict"


class TooLarge(RecoveryError):
    """A field over its documented size (422 validation_error, `details` {field, max_bytes})."""
    code = "validation_error"

    def __init__(self, message: str, *, field: str, max_bytes: int):
        super().__init__(message, details={"field": field, "max_bytes": max_bytes})


class BackupQuotaExceeded(RecoveryError):
    """Too many new backup versions for one account in the last hour (429, retry_after)."""
    code = "backup_quota_exceeded"


class SweepError(RecoveryError):
    code = "sweep_refused"


class RecoveryRateLimited(RecoveryError):
    code = "rate_limited"


class SetupChangeNotFound(RecoveryError):
    code = "setup_change_not_found"
