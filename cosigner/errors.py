"""Cosigner errors: one root; each carries a machine-readable `code`."""


class CosignerError(Exception):
    code = "cosigner_error"

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None):
        super().__init__(message)
        if code:
            self.code = code
        self.details = details or {}


class VaultError(CosignerError):
    """A key could not be unwrapped (unknown master key, tampered blob). Never carries key material."""
    code = "vault_error"


class InvalidKey(CosignerError):
    code = "invalid_key"


class InvalidDescriptor(CosignerError):
    code = "invalid_descriptor"


class AccountNotFound(CosignerError):
    code = "account_not_found"


class SpendNotFound(CosignerError):
    code = "spend_not_found"


class PsbtRejected(CosignerError):
    """Inspection refused the PSBT; nothing was signed. `code` names the reason."""
    code = "psbt_rejected"


class SpendStateError(CosignerError):
    code = "spend_state_conflict"


class WatchOnly(CosignerError):
    code = "watch_only_account"


class GapLimit(CosignerError):
    code = "gap_limit_reached"


class FundingError(CosignerError):
    code = "insufficient_funds"
