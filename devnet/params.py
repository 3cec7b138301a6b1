"""Parameter type checks with Core's messages: -3 for a wrong JSON type."""
from __future__ import annotations

from decimal import Decimal

from devnet.errors import RPCFailure, TYPE_ERROR

_JSON_TYPE = {bool: "bool", int: "number", float: "number", Decimal: "number", str: "string",
              list: "array", dict: "object", type(None): "null"}


def _type_error(value, expected: str):
    got = _JSON_TYPE.get(type(value), "unknown")
    raise RPCFailure(TYPE_ERROR, f"JSON value of type {got} is not of expected type {expected}")


def as_int(value, name: str = "", default=None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, Decimal) and value == value.to_integral_value():
            return int(value)
        _type_error(value, "number")
    return value


def as_bool(value, default: bool | None = None) -> bool:
    if value is None and default is not None:
        return default
    if not isinstance(value, bool):
        _type_error(value, "bool")
    return value


def as_str(value, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        _type_error(value, "string")
    return value


def as_list(value, default=None) -> list:
    if value is None and default is not None:
        return default
    if not isinstance(value, list):
        _type_error(value, "array")
    return value


def as_obj(value, default=None) -> dict:
    if value is None and default is not None:
        return default
    if not isinstance(value, dict):
        _type_error(value, "object")
    return value


def as_number(value) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        _type_error(value, "number")
    try:
        return Decimal(str(value))
    except Exception:
        raise RPCFailure(TYPE_ERROR, "Invalid amount") from None
