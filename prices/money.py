"""Satoshis ↔ fiat with `Decimal` only (never float), and the `Rate` the rest of Custos
passes around. Pure.

Conventions: a rate is the price of 1 BTC in the currency; fiat values are rounded to the
currency's minor unit (2 decimals, 0 for JPY/KRW/…) half-even; a fiat *limit* becomes
satoshis rounded down, so a converted limit never allows more than its fiat amount.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext

SAT_PER_BTC = 100_000_000
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
AMOUNT_RE = re.compile(r"^\d{1,13}(\.\d{1,2})?$")         # a fiat amount as given in a policy
MAX_PRICE = Decimal("1e12")                               # sanity bound on any provider's answer
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "HUF", "PYG", "UGX", "XAF", "XOF"})


@dataclass(frozen=True)
class Rate:
    """The validated price of 1 BTC in `currency` as of `as_of`. `stale` is set by the
    reader when `as_of` is older than the maximum age; a stale rate is shown to people
    but never used to decide a spend."""
    currency: str
    price: Decimal
    as_of: dt.datetime
    stale: bool = False
    sources: tuple = field(default=())

    def as_dict(self) -> dict:
        return {"rate": str(self.price), "as_of": self.as_of.isoformat()}


def minor_unit(currency: str) -> Decimal:
    return Decimal(1) if currency in ZERO_DECIMAL_CURRENCIES else Decimal("0.01")


def sat_to_fiat(sat: int, price: Decimal, currency: str) -> Decimal:
    """The fiat value of `sat` satoshis at `price` (per BTC), rounded half-even to the
    currency's minor unit."""
    with localcontext() as ctx:
        ctx.prec = 40
        return (Decimal(int(sat)) * price / SAT_PER_BTC).quantize(minor_unit(currency), rounding=ROUND_HALF_EVEN)


def fiat_to_sat_floor(amount: Decimal, price: Decimal) -> int:
    """Satoshis worth at most `amount` at `price`: floor(amount · 10^8 / price)."""
    if price <= 0:
        raise ValueError("price must be positive")
    with localcontext() as ctx:
        ctx.prec = 40
        return int((amount * SAT_PER_BTC / price).to_integral_value(rounding=ROUND_FLOOR))


def parse_amount(text) -> Decimal:
    """A non-negative fiat amount from its string form ("500", "500.00"); at most two
    decimals. Raises ValueError."""
    if not isinstance(text, str) or not AMOUNT_RE.match(text):
        raise ValueError("a fiat amount is a string like \"500.00\" (at most two decimals)")
    return Decimal(text).quantize(Decimal("0.01"))


def parse_price(value) -> Decimal:
    """A provider's price (Decimal, int or numeric string) checked to be finite, positive
    and below MAX_PRICE. Raises ValueError. Floats are refused: parse JSON with
    `parse_float=Decimal`."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("price must be a decimal, not a float")
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value)) if isinstance(value, (int, str)) else None
    except InvalidOperation:
        d = None
    if d is None or not d.is_finite() or d <= 0 or d >= MAX_PRICE:
        raise ValueError(f"not a usable price: {str(value)[:40]!r}")
    return d


def format_price(price: Decimal) -> str:
    """Canonical text of a price: two decimals at least, trailing zeros beyond removed."""
    q = price.quantize(Decimal("0.00000001"), rounding=ROUND_HALF_EVEN).normalize()
    return f"{q:f}" if -q.as_tuple().exponent >= 2 else f"{q.quantize(Decimal('0.01')):f}"
