"""WSGI middleware for the fuzz tests: the auth hook that signs every request the
generator sends.

`SigningMiddleware` reads each request as it reaches the app (method, raw path and query,
body bytes), adds Content-Digest + Signature-Input + Signature (RFC 9421, the reference
client's signer) as the fuzz device, or `Authorization: Bearer` for the staff identity,
and passes it on. Signing at the WSGI boundary covers exactly the bytes the app reads, so
every generated request is validly signed whatever schemathesis put in it. A request the
signer cannot represent (a non-ASCII target) is passed on unsigned.

`heal` runs after each response: the fuzzer may revoke its own device
(`DELETE /v1/devices/me`); the middleware un-revokes it so the rest of the run stays
signed-in (test-only, straight in the database).
"""
from __future__ import annotations

import io

from client.sdk import CustosClient


class SigningMiddleware:
    def __init__(self, app, *, client: CustosClient | None = None, bearer: str | None = None, heal=None):
        self.app, self.client, self.bearer, self.heal = app, client, bearer, heal
        self.sent = 0

    def __call__(self, environ, start_response):
        self.sent += 1
        if self.client is not None:
            self._sign(environ)
        if self.bearer is not None:
            environ["HTTP_AUTHORIZATION"] = f"Bearer {self.bearer}"
        try:
            return self.app(environ, start_response)
        finally:
            if self.heal is not None:
                self.heal(environ)

    def _sign(self, environ) -> None:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        if not raw.isascii() or any(c in raw for c in " \r\n"):
            return
        headers: dict = {}
        try:
            self.client.sign(environ["REQUEST_METHOD"], "http://localhost" + raw, headers, body,
                             keyid=self.client.device_id)
        except Exception:  # the signer refuses what it cannot represent: send unsigned
            return
        for name, value in headers.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
