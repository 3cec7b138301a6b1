"""The one place that builds adapters from settings (nothing does at import time).

Imports of adapter packages happen inside the functions so `config` stays the bottom
layer: importing `config` never pulls in Redis, SQLAlchemy or the RPC client.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def redis_client(settings):
    """A Redis client for settings.redis_url, or None in embedded mode."""
    if not settings.redis_url:
        return None
    import redis
    return redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)


def bitcoind(settings, wallet: str | None = None):
    """The bitcoind (or devnet) RPC client. Reads the cookie file per call site."""
    from chain.rpc import BitcoinRPC
    user, password = settings.rpc_credentials()
    return BitcoinRPC(settings.bitcoind_url, user, password, timeout=settings.bitcoind_timeout,
                      wallet=wallet)


def nonce_store(settings, session_factory, redis=None):
    """Redis nonces when Redis is configured (shared by all API processes), else SQL."""
    from devices.nonces import RedisNonceStore, SqlNonceStore
    if redis is not None:
        return RedisNonceStore(redis)
    return SqlNonceStore(session_factory)


def secp256k1_backend() -> str:
    """Which secp256k1 implementation embit loaded: 'libsecp256k1' (ctypes bindings to
    the bundled library) or 'pure-python' (about 50x slower). Logged at start-up."""
    from embit.util import secp256k1
    return "libsecp256k1" if "ctypes" in getattr(secp256k1.ec_pubkey_create, "__module__", "") \
        else "pure-python"
