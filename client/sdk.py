"""CustosClient: a device key, request signing, and typed calls to the Custos API.

Transport is pluggable: by default urllib against a base URL; tests pass a function that
drives Flask's test client. Every signed request covers @method, @path, @query (when
present) and content-digest (when there is a body), with `created`, a fresh 32-character
`nonce` and `keyid` (the device id, or the key fingerprint while registering).
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver, algorithms

Transport = Callable[[str, str, dict, bytes], tuple[int, dict, bytes]]


class ApiError(Exception):
    """The server answered with an error envelope."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details or {}


@dataclass
class DeviceKey:
    """A device's private key. `kind` is 'ed25519' or 'ecdsa-p256'."""
    kind: str
    private_key: object

    @classmethod
    def generate(cls, kind: str = "ed25519") -> "DeviceKey":
        if kind == "ed25519":
            return cls(kind, Ed25519PrivateKey.generate())
        if kind == "ecdsa-p256":
            return cls(kind, ec.generate_private_key(ec.SECP256R1()))
        raise ValueError("kind must be ed25519 or ecdsa-p256")

    @property
    def algorithm(self):
        return algorithms.ED25519 if self.kind == "ed25519" else algorithms.ECDSA_P256_SHA256

    def public_bytes(self) -> bytes:
        pub = self.private_key.public_key()
        if self.kind == "ed25519":
            return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)

    def public_b64(self) -> str:
        return base64.b64encode(self.public_bytes()).decode()

    def fingerprint(self) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(self.public_bytes()).digest()).rstrip(b"=").decode()

    def to_pem(self) -> bytes:
        return self.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption())

    @classmethod
    def from_pem(cls, pem: bytes) -> "DeviceKey":
        key = serialization.load_pem_private_key(pem, password=None)
        return cls("ed25519" if isinstance(key, Ed25519PrivateKey) else "ecdsa-p256", key)


class _OneKey(HTTPSignatureKeyResolver):
    def __init__(self, key):
        self._key = key

    def resolve_private_key(self, key_id: str):
        return self._key


class _Message:
    """What the signer needs: method, url, mutable headers."""

    def __init__(self, method: str, url: str, headers: dict):
        self.method, self.url, self.headers = method, url, headers


_P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _low_s_header(value: str) -> str:
    """The server accepts P-256 signatures with low S only (s ≤ n/2); `cryptography`
    returns either form, so a high s is replaced by n − s (the same signature's other form)."""
    label, _, rest = value.partition("=:")
    raw = base64.b64decode(rest.rstrip(":"))
    s = int.from_bytes(raw[32:], "big")
    if s > _P256_N // 2:
        raw = raw[:32] + (_P256_N - s).to_bytes(32, "big")
    return f"{label}=:{base64.b64encode(raw).decode()}:"


def urllib_transport(timeout: float = 30.0) -> Transport:
    def send(method, url, headers, body):
        req = urllib.request.Request(url, data=body or None, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers.items()), err.read()
    return send


class CustosClient:
    """One device talking to one Custos server."""

    def __init__(self, base_url: str, key: DeviceKey | None = None, device_id: str | None = None,
                 transport: Transport | None = None):
        self.base_url = base_url.rstrip("/")
        self.key = key or DeviceKey.generate()
        self.device_id = device_id
        self.transport = transport or urllib_transport()

    # -- signing ---------------------------------------------------------------
    def sign(self, method: str, url: str, headers: dict, body: bytes | None, *, keyid: str,
             created: dt.datetime | None = None, nonce: str | None = None) -> dict:
        """Add Content-Digest (when there is a body), Signature-Input and Signature to
        `headers`; return them."""
        components = ["@method", "@path"]
        if urlsplit(url).query:
            components.append("@query")
        signer = HTTPMessageSigner(signature_algorithm=self.key.algorithm, key_resolver=_OneKey(self.key.private_key))
        msg = _Message(method.upper(), url, headers)
        signer.sign(msg, key_id=keyid, created=created or dt.datetime.now(dt.timezone.utc),
                    nonce=nonce or secrets.token_urlsafe(24), label="sig1", include_alg=True,
                    covered_component_ids=components, body=body if body else None)
        if self.key.kind == "ecdsa-p256":
            headers["Signature"] = _low_s_header(headers["Signature"])
        return headers

    def request(self, method: str, path: str, json_body=None, *, signed: bool = True,
                keyid: str | None = None, headers: dict | None = None) -> tuple[int, dict, object]:
        """Send a request; return (status, headers, decoded JSON or None). Never raises for
        HTTP errors (see `call`)."""
        url = self.base_url + path
        body = json.dumps(json_body).encode() if json_body is not None else b""
        hdrs = {"Accept": "application/json", **(headers or {})}
        if body:
            hdrs["Content-Type"] = "application/json"
        if signed:
            kid = keyid or self.device_id
            if kid is None:
                raise ValueError("register the device first (no device id)")
            self.sign(method, url, hdrs, body, keyid=kid)
        status, resp_headers, raw = self.transport(method.upper(), url, hdrs, body)
        data = json.loads(raw) if raw and raw.strip() else None
        return status, resp_headers, data

    def call(self, method: str, path: str, json_body=None, **kw):
        """Like `request` but returns the JSON body and raises ApiError on 4xx/5xx."""
        status, _headers, data = self.request(method, path, json_body, **kw)
        if status >= 400:
            err = (data or {}).get("error", {}) if isinstance(data, dict) else {}
            raise ApiError(status, err.get("code", "http_error"), err.get("message", ""), err.get("details"))
        return data

    # -- API -------------------------------------------------------------------
    def register(self, platform: str | None = "cli", push_token: str | None = None) -> dict:
        """Register this key as a device (signed with keyid = key fingerprint)."""
        body = {"key_type": self.key.kind, "public_key": self.key.public_b64()}
        if platform:
            body["platform"] = platform
        if push_token:
            body["push_token"] = push_token
        data = self.call("POST", "/v1/devices", body, keyid=self.key.fingerprint())
        self.device_id = data["device_id"]
        return data

    def whoami(self) -> dict:
        return self.call("GET", "/v1/devices/me")

    def set_push_token(self, token: str | None) -> dict:
        return self.call("PUT", "/v1/devices/me/push-token", {"push_token": token})

    def revoke(self) -> None:
        self.call("DELETE", "/v1/devices/me")

    # -- out-of-band verification (issue #17) --------------------------------------------------
    def verify_email_set(self, account_id: str, email: str) -> dict:
        """Register an e-mail channel; the server mails a 6-digit code to it."""
        return self.call("POST", f"/v1/accounts/{account_id}/verification/email", {"email": email})

    def verify_email_confirm(self, account_id: str, code: str) -> dict:
        return self.call("POST", f"/v1/accounts/{account_id}/verification/email/confirm", {"code": code})

    def verify_totp_enroll(self, account_id: str) -> dict:
        """A new authenticator: {"channel", "otpauth_uri", "qr_svg"} (shown once)."""
        return self.call("POST", f"/v1/accounts/{account_id}/verification/totp")

    def verify_totp_confirm(self, account_id: str, code: str) -> dict:
        return self.call("POST", f"/v1/accounts/{account_id}/verification/totp/confirm", {"code": code})

    def verify_status(self, account_id: str) -> dict:
        return self.call("GET", f"/v1/accounts/{account_id}/verification")

    def verify_spend(self, spend_id: str, code: str) -> dict:
        """Confirm a spend in awaiting_verification with a TOTP code; returns the spend."""
        return self.call("POST", f"/v1/spends/{spend_id}/verification", {"code": code})

    def verify_request(self, request_id: str, code: str) -> dict:
        """Confirm any pending verification (a policy or channel change) with a TOTP code."""
        return self.call("POST", f"/v1/verifications/{request_id}", {"code": code})
