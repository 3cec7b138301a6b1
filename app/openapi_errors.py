"""Error responses documented per operation, with the `code` values a client can meet.

Decorators that refuse requests before the view runs (device signatures, staff tokens)
call `document_errors(wrapper, {...})`, so every operation they guard lists its 401/403/429
answers in the OpenAPI document with the envelope schema and the codes in the
description (OpenAPI has no field for them)."""
from __future__ import annotations

ERROR_REF = {"$ref": "#/components/schemas/Error"}

SIGNED = {
    401: ("The RFC 9421 signature was refused. `error.code`: signature_missing, signature_malformed, "
          "signature_incomplete, signature_expired, digest_mismatch, signature_invalid, nonce_reused, "
          "unknown_device, device_revoked, client_certificate_required."),
    429: "Too many requests from this device or address. `error.code`: rate_limited (see Retry-After).",
}
STAFF = {
    401: ("No valid staff credential, or a fresh TOTP code is needed (X-Staff-TOTP). `error.code`: "
          "staff_unauthorized, reauth_required, totp_not_enrolled."),
    403: "The staff member's roles or the token's scopes do not allow this. `error.code`: forbidden.",
}


def document_errors(view, responses: dict[int, str]) -> None:
    """Add `responses` (status → description) to the view's OpenAPI doc, each with the
    error envelope; an operation's own documentation of the same status wins."""
    doc = getattr(view, "_apidoc", None) or {}
    documented = doc.setdefault("manual_doc", {}).setdefault("responses", {})
    for status, description in responses.items():
        documented.setdefault(str(status), {"description": description,
                                            "content": {"application/json": {"schema": ERROR_REF}}})
    view._apidoc = doc


def errors(responses: dict[int, str]):
    """View decorator (directly under `@bp.route`): document the operation's own error
    answers and their codes; replaces what a guard documented for the same status."""
    def decorate(view):
        doc = getattr(view, "_apidoc", None) or {}
        documented = doc.setdefault("manual_doc", {}).setdefault("responses", {})
        for status, description in responses.items():
            documented[str(status)] = {"description": description,
                                       "content": {"application/json": {"schema": ERROR_REF}}}
        view._apidoc = doc
        return view
    return decorate
