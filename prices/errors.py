"""Price errors: one root; each carries a machine-readable `code`."""


class PriceError(Exception):
    code = "price_error"

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None):
        super().__init__(message)
        if code:
            self.code = code
        self.details = details or {}


class ProviderError(PriceError):
    """A provider did not give a usable answer (down, timed out, refused, malformed).
    `transient` says whether retrying could help. The message never carries an API key."""
    code = "provider_error"

    def __init__(self, message: str, *, transient: bool = False, **kw):
        super().__init__(message, **kw)
        self.transient = transient


class UnsupportedCurrency(PriceError):
    """The currency is not one of PRICE_CURRENCIES."""
    code = "unsupported_currency"


class PriceUnavailable(PriceError):
    """No price is known for the currency (the refresh job has not stored one)."""
    code = "price_unavailable"
