"""Bad input stopped before any handler sees it: the shape of a JSON body (nesting depth,
number of items) checked on the raw bytes before anything parses them, and text that
makes no sense anywhere (lone surrogates, control characters) refused in every JSON
string, query argument, path segment and console form field.

Runs as a `before_request` hook for every endpoint, so it also covers bodies parsed
before a signature is checked (`POST /v1/devices`). Answers:

- 413 `body_too_complex` `{max_depth, max_items}`: nesting deeper than MAX_JSON_DEPTH or
  more than MAX_JSON_ITEMS values (a `[` × 5000 body would exhaust the parser's recursion);
- 400 `invalid_text` `{field}`: a lone surrogate (`"\\ud800"`, which no database can store),
  a C0/C1 control character or DEL other than TAB/LF/CR — and no TAB/LF/CR either in the
  single-line fields in SINGLE_LINE (names, labels).

A body that is not valid JSON is left to the endpoint's own parser (400 `malformed_json`).
Pure apart from the Flask hook; `check_structure` and `bad_text` are unit-testable.
"""
from __future__ import annotations

import json
import re

MAX_JSON_DEPTH = 20          # deepest legitimate body (policy rules → approvals → devices) is 4
MAX_JSON_ITEMS = 20_000      # values in one body (100 prekeys or outputs use ~500)
SINGLE_LINE = frozenset({"display_name", "label", "name", "staff_id", "push_token", "email", "username"})

# A JSON string, unrolled so a 1.4 MiB base64 string is one cheap match.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKETS = re.compile(rb"[\[\]{}]")
# Lone surrogates and control characters (TAB, LF, CR allowed outside SINGLE_LINE fields).
_BAD = re.compile("[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_BAD_SINGLE_LINE = re.compile("[\ud800-\udfff\x00-\x1f\x7f-\x9f]")


class InputRejected(Exception):
    """`status`, `code`, message and details for the error envelope."""

    def __init__(self, status: int, code: str, message: str, details: dict):
        super().__init__(message)
        self.status, self.code, self.details = status, code, details


def check_structure(raw: bytes, max_depth: int = MAX_JSON_DEPTH, max_items: int = MAX_JSON_ITEMS) -> None:
    """Refuse a JSON text nested deeper than `max_depth` or holding more than `max_items`
    values, without parsing it. Cost: a split (or one regex pass) over the bytes plus a
    loop bounded by `max_items`. Raises InputRejected (413 body_too_complex)."""
    stripped = _without_strings(raw)
    details = {"max_depth": max_depth, "max_items": max_items}
    brackets = stripped.count(b"[") + stripped.count(b"{")
    if stripped.count(b",") + stripped.count(b":") + brackets > max_items:
        raise InputRejected(413, "body_too_complex", f"the JSON body holds more than {max_items} values", details)
    depth = 0
    for m in _BRACKETS.finditer(stripped):
        if m.group() in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                raise InputRejected(413, "body_too_complex", f"the JSON body is nested deeper than {max_depth}",
                                    details)
        else:
            depth -= 1


def _without_strings(raw: bytes) -> bytes:
    """`raw` with its JSON strings blanked out, for counting brackets, commas and colons.
    Without a backslash and with an even number of quotes, the strings are exactly the
    odd-numbered pieces between quotes, so a split (memchr speed) drops them; otherwise
    the regex replaces each with `""`. Neither leaves a bracket, comma or colon that is
    inside a string, so check_structure counts the same either way."""
    if b"\\" not in raw and raw.count(b'"') % 2 == 0:
        return b"".join(raw.split(b'"')[0::2])
    return _STRING.sub(b'""', raw)


def _plain(text: str) -> bool:
    """True for printable ASCII (no control character, DEL, C1 or surrogate can be in
    it): such text passes both patterns below without a regex scan. `isascii` is a flag
    test; `isprintable` one C loop."""
    return text.isascii() and text.isprintable()


def bad_text(value, path: str = "") -> str | None:
    """The path of the first string (key or value) in a parsed JSON value that holds a
    lone surrogate or a control character it should not; None when all are fine."""
    stack = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if _plain(item):
                continue
            leaf = where.rsplit(".", 1)[-1].split("[", 1)[0]
            if (_BAD_SINGLE_LINE if leaf in SINGLE_LINE else _BAD).search(item):
                return where or "body"
        elif isinstance(item, dict):
            for k, v in item.items():
                key_path = f"{where}.{k}" if where else str(k)
                if not _plain(k) and _BAD_SINGLE_LINE.search(k):
                    return key_path
                stack.append((key_path, v))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(item))
    return None


def _invalid_text(field: str) -> InputRejected:
    return InputRejected(400, "invalid_text", f"{field} contains characters that are not allowed "
                                              "(lone surrogates or control characters)", {"field": field})


def body_limit(view) -> int | None:
    """A view's own body size limit (`view.max_body`, set by decorators such as
    app.backups_api.large_body and copied outwards by functools.wraps), or None."""
    while view is not None:
        limit = getattr(view, "max_body", None)
        if limit is not None:
            return limit
        view = getattr(view, "__wrapped__", None)
    return None


def check_request(request, view=None) -> None:
    """Everything above for the current Flask request (`view`: the endpoint's function,
    for its own body limit). Raises InputRejected, or werkzeug's 413 for a body over the
    size limit."""
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and _BAD_SINGLE_LINE.search(value):
            raise _invalid_text(name)
    for name, value in request.args.items(multi=True):
        if _BAD_SINGLE_LINE.search(name) or _BAD_SINGLE_LINE.search(value):
            raise _invalid_text(name if not _BAD_SINGLE_LINE.search(name) else "query")
    if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
        return
    if request.mimetype == "application/json" or request.is_json:
        limit = body_limit(view)
        if limit is not None:
            request.max_content_length = max(limit, request.max_content_length or 0)
        raw = request.get_data(cache=True)
        if not raw:
            return
        check_structure(raw)
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            return  # the endpoint's parser answers malformed_json
        field = bad_text(value)
        if field is not None:
            raise _invalid_text(field)
    elif request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for name, value in request.form.items(multi=True):
            if _BAD_SINGLE_LINE.search(name) or _BAD.search(value):
                raise _invalid_text(name)


def install(app) -> None:
    """Register the hook: API paths answer with the error envelope, console paths with a
    plain 400 page (the console renders HTTP errors itself)."""
    from flask import request
    from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

    from app.errors import ApiError

    @app.before_request
    def _guard_input():
        req = request._get_current_object()        # one proxy lookup
        try:
            check_request(req, app.view_functions.get(req.endpoint))
        except InputRejected as exc:
            if req.path.startswith(("/admin", "/verify")):
                raise (RequestEntityTooLarge if exc.status == 413 else BadRequest)(description=str(exc)) from None
            raise ApiError(str(exc), status=exc.status, code=exc.code, details=exc.details) from None
