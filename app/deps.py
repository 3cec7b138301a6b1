"""Per-app adapters built once in create_app() from settings, reached by views via `deps()`."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app


@dataclass
class Deps:
    settings: object
    redis: object | None
    nonces: object
    limiter: object          # app.ratelimit.RateLimiter
    bitcoind: object         # chain.rpc.BitcoinRPC
    celery: object | None = None
    _cosigner: object | None = None

    @property
    def cosigner(self):
        """The CosignerContext, built on first use (opens the master-key keyring)."""
        if self._cosigner is None:
            from config.bootstrap import cosigner_context
            self._cosigner = cosigner_context(self.settings)
        return self._cosigner


def deps() -> Deps:
    return current_app._get_current_object().extensions["custos"]   # one proxy lookup
