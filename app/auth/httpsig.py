"""RFC 9421 HTTP Message Signatures, verifier side, for Custos's request profile. Pure.

Profile (what every signed request must carry):
- `Signature-Input` / `Signature` dictionaries with one label (the first label present
  in both is checked);
- covered components: `@method`, `@path` (or `@target-uri` / `@request-target`), `@query`
  when there is a query string, and `content-digest` when there is a body;
- parameters `created` (Unix seconds, within ±window of now), `nonce` (16–128 printable
  characters, single use) and `keyid` (the device id); optional `alg` must match the
  key type and optional `expires` must not have passed;
- `Content-Digest` (RFC 9530) with `sha-256` or `sha-512`, checked against the body.

`verify()` raises an AuthError subclass naming the first problem found; it checks the
cheap things first (syntax, window, digest), then the key, then the signature, and only
then burns the nonce, so a forged request cannot consume a real client's nonce.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Callable, Mapping

import http_sf
from http_sf.list import ser_item_or_inner_list

from app.auth import sf_fast
from app.auth.errors import (DigestMismatch, SignatureExpired, SignatureIncomplete,
                             SignatureInvalid, SignatureMalformed, SignatureMissing, NonceReused)

MAX_HEADER = 4096
NONCE_MIN, NONCE_MAX = 16, 128
DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
_PATH_COMPONENTS = {"@path", "@target-uri", "@request-target"}
_QUERY_COMPONENTS = {"@query", "@target-uri", "@request-target"}


@dataclass(frozen=True)
class RequestView:
    """What the verifier needs of an HTTP request. `path` and `query` are the raw,
    percent-encoded forms as sent (query without the leading '?'); header names are
    matched case-insensitively; repeated fields are passed as a list."""
    method: str
    scheme: str
    authority: str
    path: str
    query: str
    headers: Mapping[str, list[str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        if not values:
            return None
        if len(values) == 1:
            return values[0].strip()
        return ", ".join(v.strip() for v in values)


@dataclass(frozen=True)
class SignatureInput:
    label: str
    components: tuple[str, ...]
    params: dict
    serialized: str          # the @signature-params value
    signature: bytes = field(repr=False)


@dataclass(frozen=True)
class Verified:
    keyid: str
    nonce: str
    created: int
    label: str


class EnvironHeaders(Mapping):
    """`RequestView.headers` read from a WSGI environ on demand: the mapping
    `make_headers(werkzeug EnvironHeaders(environ).items())` would build, without
    walking the environ (the verifier reads three or four headers). Keys are lowercase
    names; a header is `HTTP_<NAME>` (dashes as underscores), `CONTENT_TYPE` or
    `CONTENT_LENGTH` (those two only when non-empty, as werkzeug lists them)."""

    __slots__ = ("environ",)

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ

    @staticmethod
    def _key(name: str) -> str | None:
        if type(name) is not str or "_" in name or not name.isascii() or name != name.lower():
            return None                  # no environ key maps to such a name
        key = name.upper().replace("-", "_")
        return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key

    def get(self, name, default=None):
        key = self._key(name)
        value = self.environ.get(key) if key is not None else None
        if value is None or (not value and not key.startswith("HTTP_")):
            return default
        return [value]

    def __getitem__(self, name):
        found = self.get(name)
        if found is None:
            raise KeyError(name)
        return found

    def __iter__(self):
        return iter(make_headers(_environ_pairs(self.environ)))

    def __len__(self):
        return len(make_headers(_environ_pairs(self.environ)))


def _environ_pairs(environ):
    for key, value in environ.items():
        if key.startswith("HTTP_") and key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
            yield key[5:].replace("_", "-"), value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            yield key.replace("_", "-"), value


def make_headers(pairs) -> dict[str, list[str]]:
    """Build the `RequestView.headers` mapping from (name, value) pairs."""
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name.lower(), []).append(value)
    return out


def parse_signature(req: RequestView) -> SignatureInput:
    """Parse Signature-Input and Signature. Raises SignatureMissing / SignatureMalformed."""
    raw_input, raw_sig = req.header("signature-input"), req.header("signature")
    if not raw_input or not raw_sig:
        raise SignatureMissing("this endpoint needs Signature-Input and Signature headers (RFC 9421)")
    if len(raw_input) > MAX_HEADER or len(raw_sig) > MAX_HEADER:
        raise SignatureMalformed("signature headers are too long")
    # the shapes clients send are read by sf_fast (same result); anything else by http_sf
    inputs, sigs = sf_fast.signature_input(raw_input), sf_fast.byte_member(raw_sig)
    try:
        if inputs is None:
            inputs = http_sf.parse(raw_input.encode("latin-1"), tltype="dictionary")
        if sigs is None:
            sigs = http_sf.parse(raw_sig.encode("latin-1"), tltype="dictionary")
    except Exception:  # http_sf raises several types for bad syntax
        raise SignatureMalformed("signature headers are not valid structured fields") from None
    label = next((k for k in inputs if k in sigs), None)
    if label is None:
        raise SignatureMalformed("no label appears in both Signature-Input and Signature")
    members, params = inputs[label]
    sig_value, _ = sigs[label]
    if not isinstance(members, list) or not isinstance(sig_value, (bytes, bytearray)):
        raise SignatureMalformed("Signature-Input must be an inner list and Signature a byte sequence")
    components = []
    for item, item_params in members:
        if not isinstance(item, str) or item_params:
            raise SignatureMalformed("only plain component names are supported")
        if item != item.lower():
            raise SignatureMalformed(f"component name {item!r} must be lowercase")
        if item in components:
            raise SignatureMalformed(f"component {item!r} is covered twice")
        components.append(item)
    serialized = serialize_params(components, params)
    if serialized is None:  # a parameter type the fast path does not write: the library does
        serialized = ser_item_or_inner_list(inputs[label])
    return SignatureInput(label, tuple(components), dict(params), serialized, bytes(sig_value))


def _sf_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def serialize_params(components: list, params: dict) -> str | None:
    """The `@signature-params` value (RFC 8941 serialization of the inner list of
    component names with its parameters), written directly for what signatures carry:
    string components, string / integer / true parameters. Returns None for anything
    else (the caller falls back to http_sf). Values come from http_sf's parser, so
    strings are printable ASCII and integers are in range: the output is byte-for-byte
    http_sf's."""
    if any(type(c) is not str for c in components):
        return None
    out = ["(", " ".join(_sf_string(c) for c in components), ")"]
    for key, value in params.items():
        kind = type(value)
        if value is True:
            out.append(";" + key)
        elif kind is int:
            out.append(f";{key}={value}")
        elif kind is str:
            out.append(f";{key}={_sf_string(value)}")
        else:
            return None
    return "".join(out)


def component_value(req: RequestView, name: str) -> str:
    """The value of one covered component (RFC 9421 §2). Raises SignatureIncomplete for a
    header the request does not carry and SignatureMalformed for an unknown derived one."""
    if name == "@method":
        return req.method.upper()
    if name == "@path":
        return req.path or "/"
    if name == "@query":
        return "?" + req.query
    if name == "@authority":
        return req.authority.lower()
    if name == "@scheme":
        return req.scheme.lower()
    if name == "@request-target":
        return (req.path or "/") + ("?" + req.query if req.query else "")
    if name == "@target-uri":
        return f"{req.scheme.lower()}://{req.authority.lower()}{component_value(req, '@request-target')}"
    if name.startswith("@"):
        raise SignatureMalformed(f"derived component {name!r} is not supported")
    value = req.header(name)
    if value is None:
        raise SignatureIncomplete(f"covered header {name!r} is not in the request")
    return value


def signature_base(req: RequestView, sig: SignatureInput) -> bytes:
    """The exact bytes that were signed (RFC 9421 §2.5)."""
    lines = [f'"{name}": {component_value(req, name)}' for name in sig.components]
    lines.append(f'"@signature-params": {sig.serialized}')
    base = "\n".join(lines)
    if not base.isascii() or "\r" in base:
        raise SignatureMalformed("signature base must be ASCII")
    return base.encode("ascii")


def content_digest(body: bytes, algorithm: str = "sha-256") -> str:
    """The Content-Digest header value for `body` (RFC 9530)."""
    return str(http_sf.ser({algorithm: (DIGESTS[algorithm](body).digest(), {})}))


def check_digest(req: RequestView) -> None:
    """Check Content-Digest against the body. A body without a digest, a digest with no
    supported algorithm, or any mismatching supported member raises DigestMismatch."""
    raw = req.header("content-digest")
    if raw is None:
        if req.body:
            raise DigestMismatch("a request with a body needs a Content-Digest header")
        return
    members = sf_fast.byte_member(raw)
    try:
        if members is None:
            members = http_sf.parse(raw.encode("latin-1"), tltype="dictionary")
    except Exception:
        raise DigestMismatch("Content-Digest is not a valid structured field") from None
    checked = 0
    for alg, (value, _) in members.items():
        if alg not in DIGESTS:
            continue
        if not isinstance(value, (bytes, bytearray)) or not hmac.compare_digest(
                bytes(value), DIGESTS[alg](req.body).digest()):
            raise DigestMismatch(f"Content-Digest {alg} does not match the body")
        checked += 1
    if not checked:
        raise DigestMismatch("Content-Digest must include sha-256 or sha-512")


def check_profile(req: RequestView, sig: SignatureInput, now: float, window: int) -> tuple[str, str, int]:
    """Check covered components and parameters; return (keyid, nonce, created)."""
    covered = set(sig.components)
    if "@method" not in covered or not covered & _PATH_COMPONENTS:
        raise SignatureIncomplete("the signature must cover @method and @path")
    if req.query and not covered & _QUERY_COMPONENTS:
        raise SignatureIncomplete("the signature must cover @query")
    if (req.body or req.header("content-digest")) and "content-digest" not in covered:
        raise SignatureIncomplete("the signature must cover content-digest")
    p = sig.params
    keyid, nonce, created = p.get("keyid"), p.get("nonce"), p.get("created")
    if not isinstance(keyid, str) or not keyid:
        raise SignatureIncomplete("the signature needs a keyid parameter")
    if not isinstance(created, int) or isinstance(created, bool):
        raise SignatureIncomplete("the signature needs an integer created parameter")
    if not isinstance(nonce, str) or not NONCE_MIN <= len(nonce) <= NONCE_MAX or not nonce.isprintable():
        raise SignatureIncomplete(f"the signature needs a nonce of {NONCE_MIN}-{NONCE_MAX} characters")
    if created < now - window:
        raise SignatureExpired(f"signature created more than {window} s ago")
    if created > now + window:
        raise SignatureExpired(f"signature created more than {window} s in the future")
    expires = p.get("expires")
    if expires is not None and (not isinstance(expires, int) or expires < now):
        raise SignatureExpired("signature has expired")
    return keyid, nonce, created


def verify(req: RequestView, *, now: float, window: int,
           resolve_key: Callable[[str], tuple[str, Callable[[bytes, bytes], bool]]],
           consume_nonce: Callable[[str, str], bool]) -> Verified:
    """Verify a signed request end to end.

    `resolve_key(keyid)` returns (algorithm name, verify(signature, message) -> bool) or
    raises (unknown/revoked device errors pass through). `consume_nonce(keyid, nonce)`
    returns False when the nonce was already used. Raises AuthError subclasses.
    """
    sig = parse_signature(req)
    keyid, nonce, created = check_profile(req, sig, now, window)
    check_digest(req)
    algorithm, verify_fn = resolve_key(keyid)
    alg = sig.params.get("alg")
    if alg is not None and alg != algorithm:
        raise SignatureInvalid(f"alg {alg!r} does not match the key's algorithm {algorithm!r}")
    if not verify_fn(sig.signature, signature_base(req, sig)):
        raise SignatureInvalid("signature does not verify")
    if not consume_nonce(keyid, nonce):
        raise NonceReused("this nonce was already used")
    return Verified(keyid, nonce, created, sig.label)
