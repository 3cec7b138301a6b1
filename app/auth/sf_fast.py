"""Fast paths for the two structured-field shapes every signed request carries (RFC 8941
dictionaries, as http_sf parses them), falling back to http_sf for anything else. Pure.

- `signature_input(text)`: one member whose value is an inner list of plain strings
  with parameters that are plain strings, integers or bare keys (true) — what
  Signature-Input looks like: `sig1=("@method" "@path");created=1;keyid="dev_…";…`.
- `byte_member(text)`: one member whose value is a byte sequence, no parameters — what
  Signature (`sig1=:…:`) and Content-Digest (`sha-256=:…:`) look like.

Each returns exactly what `http_sf.parse(text.encode("latin-1"), tltype="dictionary")`
returns, or None ("defer"): for any other shape (several members, escapes in strings,
tokens, decimals, booleans, extra spaces, non-canonical base64 length, …) and for
anything malformed, so errors are always http_sf's. No exceptions are raised. The
property tests in tests/unit/test_sf_fast.py hold the fast path to http_sf's answers.
"""
from __future__ import annotations

import base64
import binascii
import re

_KEY = r"[a-z*][a-z0-9_.*-]*"
_STRING = r'"[ !#-\[\]-~]*"'              # printable ASCII without '"' and '\'
_INTEGER = r"-?[0-9]{1,15}"
_PARAM = rf";{_KEY}(?:=(?:{_STRING}|{_INTEGER}))?"
_INPUT = re.compile(rf"({_KEY})=\(((?:{_STRING}(?: {_STRING})*)?)\)((?:{_PARAM})*)")
_ITEM = re.compile(r'"([^"]*)"')
_PARAM_PARTS = re.compile(rf';({_KEY})(?:=(?:"([^"]*)"|({_INTEGER})))?')
_BYTES = re.compile(rf"({_KEY})=:((?:[A-Za-z0-9+/]{{4}})*(?:[A-Za-z0-9+/]{{2}}==|[A-Za-z0-9+/]{{3}}=)?):")


def signature_input(text: str) -> dict | None:
    """{label: ([(component, {}), …], {param: value, …})} or None (defer to http_sf)."""
    m = _INPUT.fullmatch(text)
    if m is None:
        return None
    label, items, params_text = m.groups()
    params: dict = {}
    for p in _PARAM_PARTS.finditer(params_text):
        key, string, integer = p.groups()      # None for the parts a parameter lacks
        params[key] = string if string is not None else int(integer) if integer is not None else True
    return {label: ([(item, {}) for item in _ITEM.findall(items)], params)}


def byte_member(text: str) -> dict | None:
    """{label: (bytes, {})} or None (defer to http_sf)."""
    m = _BYTES.fullmatch(text)
    if m is None:
        return None
    try:
        return {m.group(1): (base64.b64decode(m.group(2), validate=True), {})}
    except (binascii.Error, ValueError):   # not reached for what the pattern admits
        return None
