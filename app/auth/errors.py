"""Authentication failures: all 401, each with its own machine-readable code."""


class AuthError(Exception):
    code = "unauthorized"
    status = 401

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code


class SignatureMissing(AuthError):
    code = "signature_missing"


class SignatureMalformed(AuthError):
    code = "signature_malformed"


class SignatureIncomplete(AuthError):
    code = "signature_incomplete"


class SignatureExpired(AuthError):
    code = "signature_expired"


class SignatureInvalid(AuthError):
    code = "signature_invalid"


class DigestMismatch(AuthError):
    code = "digest_mismatch"


class NonceReused(AuthError):
    code = "nonce_reused"


class ClientCertRequired(AuthError):
    code = "client_certificate_required"
