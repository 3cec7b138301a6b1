"""One error envelope and one table from exception class to HTTP status.

Every error leaves the API as `{"error": {"code", "message", "details"}}`. Domain
exceptions carry their machine-readable `code`; `ERRORS` decides their status. Werkzeug's
HTTP errors (404, 405, 413, 415, 429, …) and flask-smorest/webargs validation errors are
rewritten into the same envelope, keeping their headers (`Allow`, `Retry-After`).
An unexpected exception is logged (redacted) and answered with a bare 500 envelope.
"""
from __future__ import annotations

import logging

from flask import jsonify
from werkzeug.exceptions import HTTPException

from app.auth.errors import AuthError
from admin.errors import (Forbidden, InvalidStaffInput, OutboxUnavailable, ReauthRequired, StaffExists,
                          StaffNotFound, TokenNotFound)
from audit.chain import AuditDetailsError
from chain.errors import ChainRejected, ChainUnavailable
from cosigner.errors import (AccountNotFound, FundingError, GapLimit, InvalidDescriptor, InvalidKey, PsbtRejected,
                             SpendNotFound, SpendStateError, VaultError, WatchOnly)
from cosigner.policy_service import PolicyChangeNotFound
from cosigner.quotas import QuotaExceeded as AccountQuotaExceeded, RestoresExceeded
from devices.errors import DeviceNotFound, DeviceRevoked, InvalidPublicKey, KeyAlreadyRegistered
from messaging.errors import (ContactNotFound, InvalidEnvelope, InvalidKeys, InvalidRequest, InviteExpired,
                              InviteNotFound, KeysNotFound, NotPermitted, OwnInvite, RecipientNotFound)
from messaging.errors import QuotaExceeded as MessagingQuotaExceeded, TooLarge as MessagingTooLarge
from recovery.errors import BackupQuotaExceeded, TooLarge as RecoveryTooLarge
from recovery.errors import (BackupConflict, BackupError, BackupNotFound, CaseClosed, CaseNotFound, CaseStateError,
                             InvalidScheme, InvalidShare, NotConfigured, NotHolder, OtpRejected, ProofInvalid,
                             RecoveryError, RecoveryRateLimited, SetupChangeNotFound, StaffConflict, SweepError,
                             TooSoon)
from inheritance.errors import (ChangeNotFound, ClaimBlocked, ClaimClosed, ClaimConflict, ClaimNotFound,
                                InheritanceError, InheritanceSweepError, InvalidPlan, NotBeneficiary, PlanNotFound)
from verification.errors import (ChannelMissing, ChannelStateError, CodeRejected, InvalidChannel, LinkInvalid,
                                 RequestClosed, RequestNotFound, VerificationError)

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error raised by the HTTP layer itself, with its own status and code."""
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 details: dict | None = None, headers: dict | None = None):
        super().__init__(message)
        self.code = code or self.code
        self.status = status or self.status
        self.details = details or {}
        self.headers = headers or {}


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"


# Exception class → HTTP status. The most specific class listed wins (MRO order).
ERRORS: dict[type[BaseException], int] = {
    AuthError: 401,
    InvalidPublicKey: 400,
    DeviceNotFound: 404,
    DeviceRevoked: 401,
    KeyAlreadyRegistered: 409,
    AuditDetailsError: 500,
    InvalidKey: 400,
    InvalidDescriptor: 400,
    AccountNotFound: 404,
    SpendNotFound: 404,
    PsbtRejected: 422,
    SpendStateError: 409,
    WatchOnly: 409,
    GapLimit: 409,
    FundingError: 422,
    VaultError: 500,
    PolicyChangeNotFound: 404,
    AccountQuotaExceeded: 409,
    RestoresExceeded: 429,
    ChainUnavailable: 503,
    ChainRejected: 422,
    InvalidKeys: 400,
    InvalidEnvelope: 400,
    InvalidRequest: 400,
    KeysNotFound: 404,
    RecipientNotFound: 404,
    NotPermitted: 403,
    InviteNotFound: 404,
    InviteExpired: 410,
    OwnInvite: 409,
    ContactNotFound: 404,
    MessagingQuotaExceeded: 409,
    MessagingTooLarge: 422,
    RecoveryTooLarge: 422,
    RecoveryError: 400,
    InvalidScheme: 400,
    InvalidShare: 400,
    NotConfigured: 404,
    CaseNotFound: 404,
    CaseStateError: 409,
    CaseClosed: 410,
    OtpRejected: 422,
    TooSoon: 429,
    NotHolder: 403,
    ProofInvalid: 422,
    StaffConflict: 409,
    BackupError: 400,
    BackupNotFound: 404,
    BackupConflict: 409,
    BackupQuotaExceeded: 429,
    SweepError: 422,
    RecoveryRateLimited: 429,
    SetupChangeNotFound: 404,
    InheritanceError: 400,
    InvalidPlan: 400,
    PlanNotFound: 404,
    ChangeNotFound: 404,
    NotBeneficiary: 403,
    ClaimNotFound: 404,
    ClaimConflict: 409,
    ClaimBlocked: 409,
    ClaimClosed: 410,
    InheritanceSweepError: 422,
    InvalidStaffInput: 400,
    StaffNotFound: 404,
    StaffExists: 409,
    Forbidden: 403,
    ReauthRequired: 401,
    TokenNotFound: 404,
    OutboxUnavailable: 404,
    VerificationError: 400,
    InvalidChannel: 400,
    ChannelMissing: 409,
    ChannelStateError: 409,
    CodeRejected: 422,
    RequestNotFound: 404,
    RequestClosed: 409,
    LinkInvalid: 404,
}

HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 410: "gone",
    413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error",
    429: "rate_limited", 500: "internal_error", 503: "unavailable",
}


def envelope(status: int, code: str, message: str, details: dict | None = None, headers=None):
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    for name, value in (headers or {}).items() if isinstance(headers, dict) else (headers or []):
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def status_for(exc: BaseException) -> int | None:
    for klass in type(exc).__mro__:
        if klass in ERRORS:
            return ERRORS[klass]
    return None


def http_exception_response(error: HTTPException):
    """Envelope for a Werkzeug HTTPException (incl. webargs validation aborts)."""
    status = error.code or 500
    code = HTTP_CODES.get(status, "http_error")
    message = error.description or error.name
    details = {}
    data = getattr(error, "data", None) or {}
    messages = data.get("errors") or data.get("messages")
    if messages:
        details = {"fields": messages}
        if status == 400 and "json" in messages and "Invalid JSON body." in str(messages):
            code, message, details = "malformed_json", "the request body is not valid JSON", {}
        elif status == 422:
            message = "the request did not pass validation"
    if "message" in data:
        message = data["message"]
    if status == 429:
        message = "too many requests; retry later"
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    if status == 429 and not any(k.lower() == "retry-after" for k, _ in headers):
        limit = getattr(error, "limit", None)
        retry = limit.limit.get_expiry() if limit is not None and hasattr(limit, "limit") else 60
        headers.append(("Retry-After", str(retry)))
    headers += list((data.get("headers") or {}).items())
    return envelope(status, code, message, details, headers)


def register_error_handlers(app) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return envelope(exc.status, exc.code, str(exc), exc.details, exc.headers)

    @app.errorhandler(Exception)
    def _any(exc: Exception):
        if isinstance(exc, HTTPException):
            return http_exception_response(exc)
        status = status_for(exc)
        if status is None or status >= 500:
            log.exception("unhandled error: %s", type(exc).__name__)
            return envelope(500, "internal_error", "internal error")
        code = getattr(exc, "code", None)
        details = getattr(exc, "details", None)
        details = dict(details) if isinstance(details, dict) else {}
        if isinstance(exc, ChainRejected):
            code, details = "chain_rejected", {"rpc_code": exc.code, "reason": exc.message}
            return envelope(status, code, f"bitcoind refused: {exc.message}", details)
        if isinstance(exc, ChainUnavailable):
            return envelope(status, "chain_unavailable", "bitcoind is unreachable; retry later",
                            headers={"Retry-After": "5"})
        if not isinstance(code, str):
            code = HTTP_CODES.get(status, "error")
        headers = {"Retry-After": str(details["retry_after"])} if status == 429 and "retry_after" in details else None
        return envelope(status, code, str(exc), details, headers)
