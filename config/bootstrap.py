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


def push_sender(settings):
    """OneSignal when ONESIGNAL_APP_ID/ONESIGNAL_API_KEY are set, else the outbox (the
    notification rows in the database plus a log line; no credentials needed)."""
    from messaging.push import OneSignalSender, OutboxSender
    if settings.onesignal_app_id and settings.onesignal_api_key:
        return OneSignalSender(settings.onesignal_app_id, settings.onesignal_api_key, host=settings.onesignal_host)
    return OutboxSender()


def message_buckets(settings, redis=None):
    """The senders' token buckets: in Redis when configured (shared by every API
    process), in process memory otherwise."""
    from messaging.limits import Bucket, MemoryBuckets, RedisBuckets
    bucket = Bucket(settings.message_rate_burst, settings.message_rate)
    return RedisBuckets(bucket, redis) if redis is not None else MemoryBuckets(bucket)


def cosigner_context(settings, notify=None):
    """Everything the cosigner services need: network, wallet prefix, fee caps, the
    master-key keyring, the bitcoind client, the notifier and the out-of-band
    verification adapters (mailer, link base URL)."""
    from cosigner.context import CosignerContext
    from messaging.notify import notify as push_notify
    from cosigner.psbt import FeeCaps
    from cosigner.vault import keyring_from_settings
    from cosigner.vsize import rate_to_kvb
    from verification.context import verification_context
    keyring = keyring_from_settings(settings)
    return CosignerContext(
        network=settings.network, wallet_prefix=settings.bitcoind_wallet_prefix,
        caps=FeeCaps(settings.max_fee_sat, settings.max_fee_rate, settings.max_fee_share),
        keyring=keyring, node=bitcoind(settings), verification=verification_context(settings, keyring),
        notify=notify or push_notify, import_descriptors=settings.bitcoind_import_descriptors,
        reservation_ttl=settings.spend_reservation_ttl, fee_fallback_kvb=rate_to_kvb(settings.fee_fallback_rate),
        fee_floor_kvb=rate_to_kvb(settings.fee_floor_rate))


def chain_follower(settings, notify=None, **kwargs):
    """The block follower over settings' database and bitcoind, with the cosigner's
    listener (spend states, notifications) and classifier wired in."""
    from chain.follower import Follower
    from cosigner import chainevents
    from messaging.notify import notify as push_notify
    listener = chainevents.Listener(notify or push_notify)
    return Follower(bitcoind(settings), settings.database_url, listeners=(listener,),
                    classifiers=(chainevents.classify,), start_height=settings.chain_start_height, **kwargs)


def price_providers(settings) -> list:
    """The configured price providers (PRICE_PROVIDERS, plus `fixed` for PRICE_FIXED),
    sharing one HTTP client with the configured timeout, retries and proxy."""
    from decimal import Decimal
    from prices.http import HttpJson
    from prices.providers import KINDS, CoinGeckoProvider, FixedProvider
    http = HttpJson(timeout=settings.price_timeout, retries=settings.price_retries, proxy=settings.price_http_proxy)
    out, seen = [], {}
    for kind, url in settings.price_provider_urls():
        seen[kind] = seen.get(kind, 0) + 1
        name = kind if seen[kind] == 1 else f"{kind}-{seen[kind]}"
        if kind == "coingecko":
            out.append(CoinGeckoProvider(url, http, api_key=settings.coingecko_api_key, name=name))
        else:
            out.append(KINDS[kind](url, http, name=name))
    if settings.price_fixed:
        out.append(FixedProvider({cur: Decimal(price) for cur, price in settings.price_fixed}))
    return out


def price_config(settings):
    """Validation parameters for the price jobs (prices.services.PriceConfig)."""
    import datetime as dt
    from decimal import Decimal
    from prices.services import PriceConfig
    return PriceConfig(currencies=settings.price_currencies, max_age=dt.timedelta(seconds=settings.price_max_age),
                       max_deviation=Decimal(str(settings.price_max_deviation)),
                       min_sources=settings.price_min_sources, history_days=settings.price_history_days)
