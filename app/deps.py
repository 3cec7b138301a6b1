"""Per-app adapters built once in create_app() from settings, reached by views via `deps()`."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app


@dataclass
class Deps:
    settings: object
    redis: object | None
    nonces: object
    limiter: object          # flask_limiter.Limiter
    bitcoind: object         # chain.rpc.BitcoinRPC
    celery: object | None = None


def deps() -> Deps:
    return current_app.extensions["custos"]
