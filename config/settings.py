"""One immutable `Settings` object built from the environment.

`Settings.from_env(environ)` reads variables once; `Settings.validate()` refuses to run
production with missing or default secrets (raises SettingsError listing every problem,
without echoing any secret value).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from config.parsing import SettingsError, parse_bool as _bool, parse_float as _float, parse_int as _int, \
    parse_staff_keys as _staff_keys
from config.price_settings import (PRICE_DEFAULT_URLS, parse_currencies as _currencies,
                                   parse_fixed as _price_fixed, parse_providers as _price_providers, price_problems)

ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = ROOT / "var"

ENVIRONMENTS = ("development", "test", "production")
NETWORKS = ("regtest", "signet", "testnet", "main")

# Development-only defaults. Production refuses every one of them.
DEV_SECRET_KEY = "dev-insecure-secret-key"
DEV_RPC_PASSWORD = "custos-dev"


@dataclass(frozen=True)
class Settings:
    """Every knob Custos has. Field docs name the environment variable."""

    env: str = "development"                      # CUSTOS_ENV
    secret_key: str = DEV_SECRET_KEY              # SECRET_KEY
    database_url: str = f"sqlite:///{VAR_DIR / 'custos.db'}"   # DATABASE_URL
    redis_url: str | None = None                  # REDIS_URL (nonces, rate limits, broker)
    broker_url: str = f"sqla+sqlite:///{VAR_DIR / 'broker.db'}"  # BROKER_URL (default: REDIS_URL or embedded)
    broker_poll_interval: float = 0.05            # BROKER_POLL_INTERVAL seconds (embedded broker)
    reconcile_interval: float = 15.0              # RECONCILE_INTERVAL seconds (beat: due-job reconciler)
    bitcoind_url: str = "http://127.0.0.1:18443"  # BITCOIND_RPC_URL
    bitcoind_user: str = "custos"                 # BITCOIND_RPC_USER
    bitcoind_password: str = DEV_RPC_PASSWORD     # BITCOIND_RPC_PASSWORD
    bitcoind_cookie_file: str | None = None       # BITCOIND_RPC_COOKIE (overrides user/password)
    bitcoind_wallet_prefix: str = "custos-"       # BITCOIND_WALLET_PREFIX
    bitcoind_timeout: float = 30.0                # BITCOIND_TIMEOUT seconds
    bitcoind_import_descriptors: bool = False     # BITCOIND_IMPORT_DESCRIPTORS (mirror accounts into Core watch-only wallets; never read)
    bitcoind_zmq_url: str | None = None           # BITCOIND_ZMQ_URL (Core's -zmqpubhashblock/-zmqpubsequence: wake the follower)
    chain_start_height: int | None = None         # CHAIN_START_HEIGHT (where an empty chain index starts; default: the tip)
    network: str = "regtest"                      # NETWORK
    master_key: str | None = dataclasses.field(default=None, repr=False)  # MASTER_KEY (base64, 32 bytes)
    master_key_file: str | None = None            # MASTER_KEY_FILE
    master_key_previous: tuple[str, ...] = dataclasses.field(default=(), repr=False)  # MASTER_KEY_PREVIOUS (comma separated; rotation)
    onesignal_app_id: str | None = None           # ONESIGNAL_APP_ID
    onesignal_api_key: str | None = dataclasses.field(default=None, repr=False)  # ONESIGNAL_API_KEY
    onesignal_host: str = "https://api.onesignal.com"  # ONESIGNAL_HOST
    smtp_host: str | None = None                  # SMTP_HOST (unset: mail goes to the outbox table)
    smtp_port: int = 587                          # SMTP_PORT
    smtp_user: str | None = None                  # SMTP_USER
    smtp_password: str | None = dataclasses.field(default=None, repr=False)  # SMTP_PASSWORD
    smtp_from: str = "custos@localhost"           # SMTP_FROM
    ratelimit_ip: str = "300/minute"              # RATELIMIT_IP (every request, per client IP)
    ratelimit_device: str = "120/minute"          # RATELIMIT_DEVICE (signed requests, per device)
    ratelimit_register: str = "10/minute"         # RATELIMIT_REGISTER (device registration, per IP)
    ratelimit_enabled: bool = True                # RATELIMIT_ENABLED
    ratelimit_ready: str = "120/minute"           # RATELIMIT_READY (GET /v1/ready, per IP)
    ratelimit_console_login_ip: str = "30/minute"  # RATELIMIT_CONSOLE_LOGIN_IP (console login attempts per IP)
    ratelimit_console_login_pair: str = "5 per 15 minutes"  # RATELIMIT_CONSOLE_LOGIN_PAIR (failures per IP+username)
    ratelimit_console_login_user: str = "100/hour"  # RATELIMIT_CONSOLE_LOGIN_USER (failures per username, all IPs)
    cors_origins: tuple[str, ...] = ()            # CORS_ORIGINS (comma separated)
    log_level: str = "INFO"                       # LOG_LEVEL
    log_json: bool = True                         # LOG_JSON
    signature_window: int = 300                   # SIGNATURE_WINDOW seconds (RFC 9421 `created` skew)
    require_client_cert: bool = False             # REQUIRE_CLIENT_CERT
    client_cert_header: str = "X-Client-Cert-Fingerprint"  # CLIENT_CERT_HEADER
    trusted_proxies: int = 0                      # TRUSTED_PROXIES (X-Forwarded-For hops to trust)
    web_concurrency: int = 0                      # WEB_CONCURRENCY gunicorn workers (0: 2 per core)
    max_content_length: int = 1 << 20             # MAX_CONTENT_LENGTH bytes
    max_fee_sat: int = 5_000_000                  # MAX_FEE_SAT hard cap on any spend's fee
    max_fee_rate: float = 2_000.0                 # MAX_FEE_RATE sat/vB hard cap
    max_fee_share: float = 0.25                   # MAX_FEE_SHARE fee / amount sent hard cap
    chain_watch_interval: float = 5.0             # CHAIN_WATCH_INTERVAL seconds (beat: block follower pass)
    policy_loosen_delay: int = 72 * 3600          # POLICY_LOOSEN_DELAY seconds (min 3600)
    max_accounts_per_device: int = 20             # MAX_ACCOUNTS_PER_DEVICE (409 account_quota_exceeded beyond)
    staff_api_keys: tuple[tuple[str, str], ...] = dataclasses.field(default=(), repr=False)  # STAFF_API_KEYS "id:key,id:key" (interim staff auth)
    # messaging (issue #6)
    message_ttl: int = 60 * 24 * 3600             # MESSAGE_TTL seconds (> longest recovery delay + contest window)
    message_rate_burst: int = 120                 # MESSAGE_RATE_BURST envelopes (sender token bucket size)
    message_rate: float = 2.0                     # MESSAGE_RATE envelopes per second (bucket refill)
    ratelimit_prekey_fetch: str = "60/hour"       # RATELIMIT_PREKEY_FETCH (bundles, per requesting device)
    ratelimit_prekey_target: str = "120/hour"     # RATELIMIT_PREKEY_TARGET (bundles, per target device)
    ratelimit_invite_create: str = "30/hour"      # RATELIMIT_INVITE_CREATE (per device)
    ratelimit_invite_accept: str = "10/hour"      # RATELIMIT_INVITE_ACCEPT (per device and per IP)
    signed_prekey_grace: int = 7 * 24 * 3600      # SIGNED_PREKEY_GRACE seconds a superseded signed prekey is kept
    push_retry_base: float = 2.0                  # PUSH_RETRY_BASE seconds (backoff: base·2^(attempt-1))
    # social recovery (issue #7)
    recovery_delay: int = 7 * 24 * 3600           # RECOVERY_DELAY seconds (security delay; minimum 24 h)
    recovery_case_ttl: int = 30 * 24 * 3600       # RECOVERY_CASE_TTL seconds (an unfinished case expires)
    recovery_reminder_interval: int = 2 * 24 * 3600  # RECOVERY_REMINDER_INTERVAL seconds
    # inheritance (issue #18)
    inheritance_reminder_interval: int = 7 * 24 * 3600  # INHERITANCE_REMINDER_INTERVAL seconds (claim reminders)
    inheritance_release_ttl: int = 90 * 24 * 3600  # INHERITANCE_RELEASE_TTL seconds a released claim stays usable
    ratelimit_recovery_email: str = "5/hour"      # RATELIMIT_RECOVERY_EMAIL (recovery starts per email address)
    ratelimit_recovery_ip: str = "20/hour"        # RATELIMIT_RECOVERY_IP (recovery starts per client IP)
    custody_check_interval: float = 24 * 3600.0   # CUSTODY_CHECK_INTERVAL seconds (beat: challenge share holders)
    backup_reminder_interval: float = 24 * 3600.0  # BACKUP_REMINDER_INTERVAL seconds (beat)
    backup_reminder_balance_sat: int = 10_000_000  # BACKUP_REMINDER_BALANCE_SAT remind above this balance
    backup_reminder_activity: int = 20            # BACKUP_REMINDER_ACTIVITY spends since the last backup
    backup_reminder_age: int = 90 * 24 * 3600     # BACKUP_REMINDER_AGE seconds since the last backup/setup
    # admin console and operations (issue #8)
    admin_cookie_secure: bool = True              # ADMIN_COOKIE_SECURE (console cookies only over HTTPS; localhost is exempt in browsers)
    metrics_port: int | None = None               # METRICS_PORT (unset: no in-process /metrics listener)
    metrics_bind: str = "127.0.0.1"               # METRICS_BIND address for the /metrics listener
    # spends built by the server from the chain index (issue #13)
    spend_reservation_ttl: int = 900              # SPEND_RESERVATION_TTL seconds a built spend holds its coins (renewed while held)
    fee_fallback_rate: float = 20.0               # FEE_FALLBACK_RATE sat/vB when the node has no estimate (0: refuse, like Core's -fallbackfee=0)
    fee_floor_rate: float = 1.0                   # FEE_FLOOR_RATE sat/vB: nothing is built below it (nor below the node's mempool minimum)
    # prices and fiat (issue #16)
    price_currencies: tuple[str, ...] = ("USD", "EUR")  # PRICE_CURRENCIES (refreshed, allowed in policies)
    price_providers: tuple[tuple[str, str | None], ...] = ()  # PRICE_PROVIDERS "kind[=base_url],…"
    price_fixed: tuple[tuple[str, str], ...] = ()  # PRICE_FIXED "USD:60000,…" (development only)
    price_max_deviation: float = 0.02             # PRICE_MAX_DEVIATION fraction from the median that is discarded
    price_max_age: int = 600                      # PRICE_MAX_AGE seconds after which a price is stale
    price_min_sources: int = 1                    # PRICE_MIN_SOURCES answers that must agree
    price_refresh_interval: float = 60.0          # PRICE_REFRESH_INTERVAL seconds (beat)
    price_history_days: int = 365                 # PRICE_HISTORY_DAYS of daily prices kept backfilled
    price_history_interval: float = 6 * 3600.0    # PRICE_HISTORY_INTERVAL seconds (beat: backfill)
    price_timeout: float = 5.0                    # PRICE_TIMEOUT seconds per provider request
    price_retries: int = 2                        # PRICE_RETRIES extra attempts (backoff 0.5 s·2^n)
    price_http_proxy: str | None = dataclasses.field(default=None, repr=False)  # PRICE_HTTP_PROXY (may carry credentials)
    coingecko_api_key: str | None = dataclasses.field(default=None, repr=False)  # PRICE_COINGECKO_API_KEY
    # out-of-band verification (issue #17)
    verify_ttl: int = 900                         # VERIFY_TTL seconds a verification link / request lives
    verify_base_url: str = "http://localhost:8080"  # VERIFY_BASE_URL: where the e-mailed /verify links point

    @classmethod
    def from_env(cls, environ: dict | None = None) -> "Settings":
        """Build settings from `environ` (default: os.environ). Raises SettingsError on
        malformed values; call `validate()` for the production checks."""
        e = dict(os.environ if environ is None else environ)
        redis_url = e.get("REDIS_URL") or None
        broker = e.get("BROKER_URL") or redis_url or cls.broker_url
        cors = tuple(o.strip() for o in e.get("CORS_ORIGINS", "").split(",") if o.strip())
        s = cls(
            env=e.get("CUSTOS_ENV", "development"),
            secret_key=e.get("SECRET_KEY", DEV_SECRET_KEY),
            database_url=e.get("DATABASE_URL") or cls.database_url,
            redis_url=redis_url,
            broker_url=broker,
            broker_poll_interval=_float("BROKER_POLL_INTERVAL", e.get("BROKER_POLL_INTERVAL"), 0.05),
            reconcile_interval=_float("RECONCILE_INTERVAL", e.get("RECONCILE_INTERVAL"), 15.0),
            bitcoind_url=e.get("BITCOIND_RPC_URL", cls.bitcoind_url),
            bitcoind_user=e.get("BITCOIND_RPC_USER", cls.bitcoind_user),
            bitcoind_password=e.get("BITCOIND_RPC_PASSWORD", DEV_RPC_PASSWORD),
            bitcoind_cookie_file=e.get("BITCOIND_RPC_COOKIE") or None,
            bitcoind_wallet_prefix=e.get("BITCOIND_WALLET_PREFIX", cls.bitcoind_wallet_prefix),
            bitcoind_timeout=_float("BITCOIND_TIMEOUT", e.get("BITCOIND_TIMEOUT"), 30.0),
            bitcoind_import_descriptors=_bool(e.get("BITCOIND_IMPORT_DESCRIPTORS"), False),
            bitcoind_zmq_url=e.get("BITCOIND_ZMQ_URL") or None,
            chain_start_height=(_int("CHAIN_START_HEIGHT", e.get("CHAIN_START_HEIGHT"), 0)
                                if e.get("CHAIN_START_HEIGHT") else None),
            network=e.get("NETWORK", "regtest"),
            master_key=e.get("MASTER_KEY") or None,
            master_key_file=e.get("MASTER_KEY_FILE") or None,
            master_key_previous=tuple(k.strip() for k in e.get("MASTER_KEY_PREVIOUS", "").split(",") if k.strip()),
            onesignal_app_id=e.get("ONESIGNAL_APP_ID") or None,
            onesignal_api_key=e.get("ONESIGNAL_API_KEY") or None,
            onesignal_host=e.get("ONESIGNAL_HOST", cls.onesignal_host),
            smtp_host=e.get("SMTP_HOST") or None,
            smtp_port=_int("SMTP_PORT", e.get("SMTP_PORT"), 587),
            smtp_user=e.get("SMTP_USER") or None,
            smtp_password=e.get("SMTP_PASSWORD") or None,
            smtp_from=e.get("SMTP_FROM", cls.smtp_from),
            ratelimit_ip=e.get("RATELIMIT_IP", cls.ratelimit_ip),
            ratelimit_device=e.get("RATELIMIT_DEVICE", cls.ratelimit_device),
            ratelimit_register=e.get("RATELIMIT_REGISTER", cls.ratelimit_register),
            ratelimit_enabled=_bool(e.get("RATELIMIT_ENABLED"), True),
            ratelimit_ready=e.get("RATELIMIT_READY", cls.ratelimit_ready),
            ratelimit_console_login_ip=e.get("RATELIMIT_CONSOLE_LOGIN_IP", cls.ratelimit_console_login_ip),
            ratelimit_console_login_pair=e.get("RATELIMIT_CONSOLE_LOGIN_PAIR", cls.ratelimit_console_login_pair),
            ratelimit_console_login_user=e.get("RATELIMIT_CONSOLE_LOGIN_USER", cls.ratelimit_console_login_user),
            cors_origins=cors,
            log_level=e.get("LOG_LEVEL", "INFO").upper(),
            log_json=_bool(e.get("LOG_JSON"), True),
            signature_window=_int("SIGNATURE_WINDOW", e.get("SIGNATURE_WINDOW"), 300),
            require_client_cert=_bool(e.get("REQUIRE_CLIENT_CERT"), False),
            client_cert_header=e.get("CLIENT_CERT_HEADER", cls.client_cert_header),
            trusted_proxies=_int("TRUSTED_PROXIES", e.get("TRUSTED_PROXIES"), 0),
            web_concurrency=_int("WEB_CONCURRENCY", e.get("WEB_CONCURRENCY"), 0),
            max_content_length=_int("MAX_CONTENT_LENGTH", e.get("MAX_CONTENT_LENGTH"), 1 << 20),
            max_fee_sat=_int("MAX_FEE_SAT", e.get("MAX_FEE_SAT"), 5_000_000),
            max_fee_rate=_float("MAX_FEE_RATE", e.get("MAX_FEE_RATE"), 2_000.0),
            max_fee_share=_float("MAX_FEE_SHARE", e.get("MAX_FEE_SHARE"), 0.25),
            chain_watch_interval=_float("CHAIN_WATCH_INTERVAL", e.get("CHAIN_WATCH_INTERVAL"), 5.0),
            staff_api_keys=_staff_keys(e.get("STAFF_API_KEYS", "")),
            policy_loosen_delay=_int("POLICY_LOOSEN_DELAY", e.get("POLICY_LOOSEN_DELAY"), 72 * 3600),
            max_accounts_per_device=_int("MAX_ACCOUNTS_PER_DEVICE", e.get("MAX_ACCOUNTS_PER_DEVICE"), 20),
            message_ttl=_int("MESSAGE_TTL", e.get("MESSAGE_TTL"), cls.message_ttl),
            message_rate_burst=_int("MESSAGE_RATE_BURST", e.get("MESSAGE_RATE_BURST"), cls.message_rate_burst),
            message_rate=_float("MESSAGE_RATE", e.get("MESSAGE_RATE"), cls.message_rate),
            ratelimit_prekey_fetch=e.get("RATELIMIT_PREKEY_FETCH", cls.ratelimit_prekey_fetch),
            ratelimit_prekey_target=e.get("RATELIMIT_PREKEY_TARGET", cls.ratelimit_prekey_target),
            ratelimit_invite_create=e.get("RATELIMIT_INVITE_CREATE", cls.ratelimit_invite_create),
            ratelimit_invite_accept=e.get("RATELIMIT_INVITE_ACCEPT", cls.ratelimit_invite_accept),
            signed_prekey_grace=_int("SIGNED_PREKEY_GRACE", e.get("SIGNED_PREKEY_GRACE"), cls.signed_prekey_grace),
            push_retry_base=_float("PUSH_RETRY_BASE", e.get("PUSH_RETRY_BASE"), cls.push_retry_base),
            recovery_delay=_int("RECOVERY_DELAY", e.get("RECOVERY_DELAY"), cls.recovery_delay),
            recovery_case_ttl=_int("RECOVERY_CASE_TTL", e.get("RECOVERY_CASE_TTL"), cls.recovery_case_ttl),
            recovery_reminder_interval=_int("RECOVERY_REMINDER_INTERVAL", e.get("RECOVERY_REMINDER_INTERVAL"),
                                            cls.recovery_reminder_interval),
            inheritance_reminder_interval=_int("INHERITANCE_REMINDER_INTERVAL", e.get("INHERITANCE_REMINDER_INTERVAL"),
                                               cls.inheritance_reminder_interval),
            inheritance_release_ttl=_int("INHERITANCE_RELEASE_TTL", e.get("INHERITANCE_RELEASE_TTL"),
                                         cls.inheritance_release_ttl),
            ratelimit_recovery_email=e.get("RATELIMIT_RECOVERY_EMAIL", cls.ratelimit_recovery_email),
            ratelimit_recovery_ip=e.get("RATELIMIT_RECOVERY_IP", cls.ratelimit_recovery_ip),
            custody_check_interval=_float("CUSTODY_CHECK_INTERVAL", e.get("CUSTODY_CHECK_INTERVAL"),
                                          cls.custody_check_interval),
            backup_reminder_interval=_float("BACKUP_REMINDER_INTERVAL", e.get("BACKUP_REMINDER_INTERVAL"),
                                            cls.backup_reminder_interval),
            backup_reminder_balance_sat=_int("BACKUP_REMINDER_BALANCE_SAT", e.get("BACKUP_REMINDER_BALANCE_SAT"),
                                             cls.backup_reminder_balance_sat),
            backup_reminder_activity=_int("BACKUP_REMINDER_ACTIVITY", e.get("BACKUP_REMINDER_ACTIVITY"),
                                          cls.backup_reminder_activity),
            backup_reminder_age=_int("BACKUP_REMINDER_AGE", e.get("BACKUP_REMINDER_AGE"), cls.backup_reminder_age),
            admin_cookie_secure=_bool(e.get("ADMIN_COOKIE_SECURE"), True),
            metrics_port=_int("METRICS_PORT", e.get("METRICS_PORT"), 0) or None,
            metrics_bind=e.get("METRICS_BIND", cls.metrics_bind),
            spend_reservation_ttl=_int("SPEND_RESERVATION_TTL", e.get("SPEND_RESERVATION_TTL"),
                                       cls.spend_reservation_ttl),
            fee_fallback_rate=_float("FEE_FALLBACK_RATE", e.get("FEE_FALLBACK_RATE"), cls.fee_fallback_rate,
                                     allow_zero=True),
            fee_floor_rate=_float("FEE_FLOOR_RATE", e.get("FEE_FLOOR_RATE"), cls.fee_floor_rate),
            price_currencies=_currencies(e.get("PRICE_CURRENCIES") or None),
            price_providers=_price_providers(e.get("PRICE_PROVIDERS", "")),
            price_fixed=_price_fixed(e.get("PRICE_FIXED", "")),
            price_max_deviation=_float("PRICE_MAX_DEVIATION", e.get("PRICE_MAX_DEVIATION"), cls.price_max_deviation),
            price_max_age=_int("PRICE_MAX_AGE", e.get("PRICE_MAX_AGE"), cls.price_max_age),
            price_min_sources=_int("PRICE_MIN_SOURCES", e.get("PRICE_MIN_SOURCES"), cls.price_min_sources),
            price_refresh_interval=_float("PRICE_REFRESH_INTERVAL", e.get("PRICE_REFRESH_INTERVAL"),
                                          cls.price_refresh_interval),
            price_history_days=_int("PRICE_HISTORY_DAYS", e.get("PRICE_HISTORY_DAYS"), cls.price_history_days),
            price_history_interval=_float("PRICE_HISTORY_INTERVAL", e.get("PRICE_HISTORY_INTERVAL"),
                                          cls.price_history_interval),
            price_timeout=_float("PRICE_TIMEOUT", e.get("PRICE_TIMEOUT"), cls.price_timeout),
            price_retries=_int("PRICE_RETRIES", e.get("PRICE_RETRIES"), cls.price_retries),
            price_http_proxy=e.get("PRICE_HTTP_PROXY") or None,
            coingecko_api_key=e.get("PRICE_COINGECKO_API_KEY") or None,
            verify_ttl=_int("VERIFY_TTL", e.get("VERIFY_TTL"), cls.verify_ttl),
            verify_base_url=(e.get("VERIFY_BASE_URL") or cls.verify_base_url).rstrip("/"),
        )
        s.check_values()
        return s

    def replace(self, **changes) -> "Settings":
        """A copy with some fields changed (tests, CLI overrides)."""
        s = dataclasses.replace(self, **changes)
        s.check_values()
        return s

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("sqla+")

    def check_values(self) -> None:
        """Reject values that make no sense in any environment."""
        problems = []
        if self.env not in ENVIRONMENTS:
            problems.append(f"CUSTOS_ENV must be one of {', '.join(ENVIRONMENTS)}")
        if self.network not in NETWORKS:
            problems.append(f"NETWORK must be one of {', '.join(NETWORKS)}")
        if not 30 <= self.signature_window <= 3600:
            problems.append("SIGNATURE_WINDOW must be between 30 and 3600 seconds")
        if self.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            problems.append("LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        if self.policy_loosen_delay < 3600:
            problems.append("POLICY_LOOSEN_DELAY must be at least 3600 seconds")
        if self.max_accounts_per_device < 1:
            problems.append("MAX_ACCOUNTS_PER_DEVICE must be at least 1")
        if self.max_content_length < 1024:
            problems.append("MAX_CONTENT_LENGTH must be at least 1024 bytes")
        if self.message_ttl < 24 * 3600:
            problems.append("MESSAGE_TTL must be at least one day (recovery shards travel as messages)")
        if self.message_rate_burst < 1:
            problems.append("MESSAGE_RATE_BURST must be at least 1")
        if self.recovery_delay < 24 * 3600:
            problems.append("RECOVERY_DELAY must be at least 86400 seconds (24 h)")
        if self.recovery_case_ttl <= self.recovery_delay:
            problems.append("RECOVERY_CASE_TTL must be longer than RECOVERY_DELAY")
        if self.recovery_reminder_interval < 3600:
            problems.append("RECOVERY_REMINDER_INTERVAL must be at least 3600 seconds")
        if self.inheritance_reminder_interval < 3600:
            problems.append("INHERITANCE_REMINDER_INTERVAL must be at least 3600 seconds")
        if self.inheritance_release_ttl < 24 * 3600:
            problems.append("INHERITANCE_RELEASE_TTL must be at least 86400 seconds")
        if not 60 <= self.spend_reservation_ttl <= 24 * 3600:
            problems.append("SPEND_RESERVATION_TTL must be between 60 and 86400 seconds")
        if self.fee_fallback_rate < 0:
            problems.append("FEE_FALLBACK_RATE must be 0 (disabled) or a positive sat/vB rate")
        problems += price_problems(self)
        if not 60 <= self.verify_ttl <= 24 * 3600:
            problems.append("VERIFY_TTL must be between 60 and 86400 seconds")
        if not self.verify_base_url.startswith(("http://", "https://")):
            problems.append("VERIFY_BASE_URL must be an http(s):// URL")
        if problems:
            raise SettingsError("; ".join(problems))

    def price_provider_urls(self) -> list[tuple[str, str]]:
        """(kind, base URL) of each configured provider, defaults filled in."""
        return [(kind, url or PRICE_DEFAULT_URLS.get(kind, "")) for kind, url in self.price_providers]

    def validate(self) -> "Settings":
        """Production checks: no default or missing secrets, no embedded parts.

        Returns self so it chains; raises SettingsError naming each problem (never the
        secret's value)."""
        self.check_values()
        if not self.production:
            return self
        problems = []
        if not self.secret_key or self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32:
            problems.append("SECRET_KEY must be set to a random value of at least 32 characters")
        if not (self.master_key or self.master_key_file):
            problems.append("MASTER_KEY or MASTER_KEY_FILE must be set")
        if self.database_url.startswith("sqlite"):
            problems.append("DATABASE_URL must point to PostgreSQL in production")
        if not self.redis_url:
            problems.append("REDIS_URL must be set in production (nonces and rate limits)")
        if self.embedded_broker:
            problems.append("BROKER_URL must not be the embedded SQLite broker in production")
        if not self.bitcoind_cookie_file and (
                not self.bitcoind_password or self.bitcoind_password == DEV_RPC_PASSWORD):
            problems.append("BITCOIND_RPC_PASSWORD (or BITCOIND_RPC_COOKIE) must be set")
        if self.onesignal_app_id and not self.onesignal_api_key:
            problems.append("ONESIGNAL_API_KEY must be set when ONESIGNAL_APP_ID is")
        if self.smtp_host and self.smtp_user and not self.smtp_password:
            problems.append("SMTP_PASSWORD must be set when SMTP_USER is")
        if self.staff_api_keys:
            problems.append("STAFF_API_KEYS is a development fallback; use staff accounts and API tokens")
        problems += self._outbound_problems()
        if not self.verify_base_url.startswith("https://"):
            problems.append("VERIFY_BASE_URL must be an https:// URL in production (the links carry tokens)")
        if not self.admin_cookie_secure:
            problems.append("ADMIN_COOKIE_SECURE must stay on in production")
        if self.price_fixed:
            problems.append("PRICE_FIXED is for development; configure PRICE_PROVIDERS")
        for kind, url in self.price_provider_urls():
            if not url.startswith("https://"):
                problems.append(f"PRICE_PROVIDERS: {kind} must use an https:// base URL in production")
        if problems:
            raise SettingsError("production configuration refused: " + "; ".join(problems))
        return self

    def _outbound_problems(self) -> list[str]:
        """Production: every outbound URL carries credentials or secrets, so it is https —
        except bitcoind's RPC, which has no TLS: plain http only to a loopback or private
        address or a single-label (service) name on the deployment's own network."""
        from ipaddress import ip_address
        from urllib.parse import urlsplit
        problems = []
        if urlsplit(self.onesignal_host).scheme != "https":
            problems.append("ONESIGNAL_HOST must be an https:// URL in production")
        rpc = urlsplit(self.bitcoind_url)
        if rpc.scheme == "http":
            host = rpc.hostname or ""
            try:
                private = ip_address(host).is_private
            except ValueError:
                private = host == "localhost" or ("." not in host and bool(host))
            if not private:
                problems.append("BITCOIND_RPC_URL: plain http only to a loopback/private address or a service name "
                                "on the private network; otherwise put bitcoind behind TLS (https://)")
        elif rpc.scheme != "https":
            problems.append("BITCOIND_RPC_URL must be an http(s):// URL")
        return problems

    def rpc_credentials(self) -> tuple[str, str]:
        """(user, password) for bitcoind, read from the cookie file when configured."""
        if self.bitcoind_cookie_file:
            text = Path(self.bitcoind_cookie_file).read_text().strip()
            user, _, password = text.partition(":")
            return user, password
        return self.bitcoind_user, self.bitcoind_password


def gunicorn_workers(settings: Settings, cores: int | None = None) -> int:
    """gunicorn sync workers: WEB_CONCURRENCY, else 2 per core (measured, see
    docs/OPERATIONS.md "Choosing the API server")."""
    if settings.web_concurrency > 0:
        return settings.web_concurrency
    return 2 * (cores or os.cpu_count() or 1)
