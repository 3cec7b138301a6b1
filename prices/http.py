"""A small JSON-over-HTTP(S) client for the price and fee providers: a timeout on every
request, retries with exponential backoff on transient failures (network errors,
timeouts, 429, 5xx), a User-Agent, a response size cap, and JSON numbers parsed as
`Decimal` (never float).

The environment's proxy variables are ignored (config/settings.py is the only reader of
the environment); a proxy, when wanted, is passed in explicitly.
"""
from __future__ import annotations

import json
import logging
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable
from urllib.parse import urlencode, urlsplit

from prices.errors import ProviderError

log = logging.getLogger(__name__)

USER_AGENT = "Custos/1 (price and fee refresh; +self-hosted)"
MAX_RESPONSE_BYTES = 1 << 20
MAX_RETRY_AFTER = 10.0           # seconds: a longer Retry-After is not waited for inside one refresh


@dataclass
class HttpJson:
    """GET JSON documents. `retries` extra attempts after the first, waiting
    `backoff`·2^n seconds (or the server's Retry-After, capped) between them."""
    timeout: float = 5.0
    retries: int = 2
    backoff: float = 0.5
    proxy: str | None = None
    user_agent: str = USER_AGENT
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self):
        handlers = [urllib.request.ProxyHandler({"http": self.proxy, "https": self.proxy} if self.proxy else {})]
        self._opener = urllib.request.build_opener(*handlers)

    def get(self, url: str, params: dict | None = None, headers: dict | None = None, *, name: str = "provider"):
        """The decoded JSON at `url` (+ `params` as a query string). Raises ProviderError:
        transient after the retries are spent, permanent at once for other 4xx, bodies
        that are not JSON or are larger than MAX_RESPONSE_BYTES. Never logs headers (API
        keys travel there) or the query string."""
        full = url + ("?" + urlencode(params) if params else "")
        where = f"{name} {urlsplit(url).netloc}{urlsplit(url).path}"
        attempt = 0
        while True:
            try:
                return self._once(full, headers or {}, where)
            except ProviderError as err:
                if not err.transient or attempt >= self.retries:
                    raise
                wait = err.details.get("retry_after")
                wait = min(float(wait), MAX_RETRY_AFTER) if wait is not None else self.backoff * (2 ** attempt)
                log.info("%s: %s; retry %d/%d in %.1fs", where, err, attempt + 1, self.retries, wait)
                attempt += 1
                self.sleep(wait)

    def _once(self, url: str, headers: dict, where: str):
        req = urllib.request.Request(url, headers={"User-Agent": self.user_agent, "Accept": "application/json",
                                                   **headers})
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                body = resp.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as err:
            transient = err.code == 429 or err.code >= 500
            retry_after = _retry_after(err.headers.get("Retry-After") if err.headers else None)
            raise ProviderError(f"{where} answered HTTP {err.code}", transient=transient,
                                details={"status": err.code, "retry_after": retry_after}) from None
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ProviderError(f"{where} unreachable: {type(reason).__name__}", transient=True) from None
        if len(body) > MAX_RESPONSE_BYTES:
            raise ProviderError(f"{where} answered more than {MAX_RESPONSE_BYTES} bytes")
        try:
            return json.loads(body, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            raise ProviderError(f"{where} answered something that is not JSON") from None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
