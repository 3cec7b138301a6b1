"""Staff errors: one root; the HTTP status for each is chosen in app/errors.py."""


class StaffError(Exception):
    code = "staff_error"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code


class InvalidStaffInput(StaffError):          # 400
    code = "invalid_staff_input"


class StaffNotFound(StaffError):              # 404
    code = "staff_not_found"


class StaffExists(StaffError):                # 409
    code = "staff_exists"


class Forbidden(StaffError):                  # 403: authenticated, but the role or scope does not allow it
    code = "forbidden"


class ReauthRequired(StaffError):             # 401: a fresh TOTP code is needed for this action
    code = "reauth_required"


class TokenNotFound(StaffError):              # 404
    code = "token_not_found"


class OutboxUnavailable(StaffError):          # 404: development outboxes are off in production
    code = "outbox_unavailable"
