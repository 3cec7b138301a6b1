"""Schemas for prices and fiat values (decimal amounts travel as strings)."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.schemas import StrictSchema

CURRENCY = validate.Regexp(r"^[A-Z]{3}$", error="a three-letter currency code in capitals, e.g. USD")


class CurrencyQuerySchema(StrictSchema):
    currency = fields.String(validate=CURRENCY, metadata={"description": "ISO 4217 code (one of PRICE_CURRENCIES)"})


class PriceSourceSchema(Schema):
    source = fields.String()
    price = fields.String()
    as_of = fields.String()
    reason = fields.String(metadata={"description": "why it was left out: deviation | stale | future"})


class PriceSchema(Schema):
    currency = fields.String()
    price = fields.String(metadata={"description": "price of 1 BTC, decimal text", "example": "60000.00"})
    as_of = fields.DateTime(metadata={"description": "time of the oldest answer the price is made of"})
    stale = fields.Boolean(metadata={"description": "older than PRICE_MAX_AGE: shown, never used for limits"})
    sources = fields.List(fields.Nested(PriceSourceSchema), metadata={"description": "answers the price is the median of"})
    discarded = fields.List(fields.Nested(PriceSourceSchema))
    checked_at = fields.DateTime(metadata={"description": "the last refresh attempt"})
    problem = fields.String(allow_none=True, metadata={"description": "why the last refresh gave no price"})


class FiatSchema(Schema):
    """A fiat value next to an amount in satoshis; absent (never zero) when no price is known."""
    currency = fields.String()
    value = fields.String(metadata={"description": "decimal text in the currency's minor unit", "example": "123.45"})
    rate = fields.String(metadata={"description": "price of 1 BTC used"})
    as_of = fields.DateTime()
    stale = fields.Boolean()
