"""Parsing and checks of the price settings (issue #16), for config/settings.py. These
functions take the variables' text; settings.py stays the only reader of the environment."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from config.parsing import SettingsError

PRICE_PROVIDER_KINDS = ("spotbit", "coingecko", "coinbase")
PRICE_DEFAULT_URLS = {"coingecko": "https://api.coingecko.com/api/v3", "coinbase": "https://api.coinbase.com"}


def parse_currencies(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ("USD", "EUR")
    out = tuple(dict.fromkeys(v.strip().upper() for v in value.split(",") if v.strip()))
    if any(not (len(c) == 3 and c.isascii() and c.isalpha()) for c in out):
        raise SettingsError("PRICE_CURRENCIES must be comma-separated three-letter codes (USD,EUR)")
    return out


def parse_providers(value: str) -> tuple[tuple[str, str | None], ...]:
    """PRICE_PROVIDERS "kind[=base_url],…" (kinds: spotbit, coingecko, coinbase)."""
    out = []
    for item in filter(None, (v.strip() for v in value.split(","))):
        kind, sep, url = item.partition("=")
        kind = kind.strip().lower()
        if kind not in PRICE_PROVIDER_KINDS:
            raise SettingsError(f"PRICE_PROVIDERS: unknown provider {kind!r} "
                                f"(one of {', '.join(PRICE_PROVIDER_KINDS)})")
        url = url.strip() if sep else None
        if sep and not url.startswith(("http://", "https://")):
            raise SettingsError(f"PRICE_PROVIDERS: the base URL of {kind} must be http(s)://…")
        out.append((kind, url or None))
    return tuple(out)


def parse_fixed(value: str) -> tuple[tuple[str, str], ...]:
    """PRICE_FIXED "USD:60000,EUR:55000" (development)."""
    out = []
    for item in filter(None, (v.strip() for v in value.split(","))):
        cur, sep, price = item.partition(":")
        try:
            ok = bool(sep) and len(cur.strip()) == 3 and Decimal(price.strip()) > 0
        except InvalidOperation:
            ok = False
        if not ok:
            raise SettingsError("PRICE_FIXED must be CUR:price pairs, e.g. USD:60000,EUR:55000")
        out.append((cur.strip().upper(), price.strip()))
    return tuple(out)


def price_problems(self) -> list[str]:
    """What is wrong with the price settings of `self` (a Settings), in any environment."""
    problems = []
    if not 0 < self.price_max_deviation <= 0.5:
        problems.append("PRICE_MAX_DEVIATION must be a fraction in (0, 0.5], e.g. 0.02")
    if not 30 <= self.price_max_age <= 24 * 3600:
        problems.append("PRICE_MAX_AGE must be between 30 and 86400 seconds")
    if self.price_min_sources < 1:
        problems.append("PRICE_MIN_SOURCES must be at least 1")
    if not 0 <= self.price_history_days <= 3650:
        problems.append("PRICE_HISTORY_DAYS must be between 0 and 3650")
    if not 0 <= self.price_retries <= 5:
        problems.append("PRICE_RETRIES must be between 0 and 5")
    if any(kind == "spotbit" and not url for kind, url in self.price_providers):
        problems.append("PRICE_PROVIDERS: spotbit needs its base URL (spotbit=https://host/api)")
    if self.price_fixed and not self.price_currencies:
        problems.append("PRICE_FIXED needs PRICE_CURRENCIES")
    return problems
