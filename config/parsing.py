"""Parsers for the text of environment variables (used by config/settings.py, the only
reader of the environment). Each returns the default for an unset or empty value and
raises SettingsError naming the variable for anything it cannot read."""
from __future__ import annotations


class SettingsError(ValueError):
    """The environment describes a configuration that must not start."""


def parse_bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"expected a boolean, got {value!r}")


def parse_int(name: str, value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"{name} must be an integer") from None


def parse_float(name: str, value: str | None, default: float, *, allow_zero: bool = False) -> float:
    """A positive number (zero too with `allow_zero`)."""
    if value is None or value == "":
        return default
    try:
        result = float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number") from None
    if allow_zero and result < 0:
        raise SettingsError(f"{name} must not be negative")
    if not allow_zero and not result > 0:
        raise SettingsError(f"{name} must be positive")
    return result


def parse_staff_keys(value: str) -> tuple[tuple[str, str], ...]:
    out = []
    for item in filter(None, (v.strip() for v in value.split(","))):
        staff_id, sep, key = item.partition(":")
        if not sep or not staff_id or len(key) < 24:
            raise SettingsError("STAFF_API_KEYS must be id:key pairs with keys of at least 24 characters")
        out.append((staff_id, key))
    return tuple(out)
