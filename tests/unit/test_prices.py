"""Prices, pure parts: satoshi/fiat conversion with Decimal, and validation across
providers (median, deviation discard, staleness, quorum, future-dated answers)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from prices.money import fiat_to_sat_floor, format_price, parse_amount, parse_price, sat_to_fiat
from prices.validate import Quote, combine, median

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.timezone.utc)
AGE, DEV = dt.timedelta(minutes=10), Decimal("0.02")


def q(source, price, minutes_ago=0, cur="USD"):
    return Quote(source, cur, Decimal(price), NOW - dt.timedelta(minutes=minutes_ago))


def test_sat_to_fiat_rounds_half_even_to_the_minor_unit():
    assert sat_to_fiat(100_000_000, Decimal("60000"), "USD") == Decimal("60000.00")
    assert sat_to_fiat(12_345, Decimal("60000"), "USD") == Decimal("7.41")          # 7.407
    assert sat_to_fiat(12_345, Decimal("9000000"), "JPY") == Decimal("1111")        # 1111.05 → 0 decimals
    assert sat_to_fiat(0, Decimal("60000"), "EUR") == Decimal("0.00")


def test_a_fiat_limit_becomes_satoshis_rounded_down():
    assert fiat_to_sat_floor(Decimal("500.00"), Decimal("60000")) == 833_333          # 833 333.33…
    assert fiat_to_sat_floor(Decimal("600.00"), Decimal("60000")) == 1_000_000
    with pytest.raises(ValueError):
        fiat_to_sat_floor(Decimal("1"), Decimal("0"))


@given(st.integers(min_value=0, max_value=10**12).map(lambda c: Decimal(c) / 100),
       st.integers(min_value=100, max_value=10**9).map(lambda c: Decimal(c) / 100))
def test_converted_limit_is_never_worth_more_than_the_fiat_amount(amount, price):
    sat = fiat_to_sat_floor(amount, price)
    assert Decimal(sat) * price / 100_000_000 <= amount
    assert Decimal(sat + 1) * price / 100_000_000 > amount


@pytest.mark.parametrize("text", ["500", "500.00", "0", "0.5", "1234567890123.99"])
def test_parse_amount_accepts(text):
    assert parse_amount(text) == Decimal(text)


@pytest.mark.parametrize("bad", ["-1", "1e3", "1.001", "", " 5", "NaN", 500, None, "12345678901234"])
def test_parse_amount_refuses(bad):
    with pytest.raises(ValueError):
        parse_amount(bad)


@pytest.mark.parametrize("bad", [0, -5, "abc", "NaN", "Infinity", 60000.5, True, None, "1e13", {}])
def test_parse_price_refuses_what_is_not_a_usable_price(bad):
    with pytest.raises(ValueError):
        parse_price(bad)


def test_format_price_keeps_cents_and_drops_noise():
    assert format_price(Decimal("60000")) == "60000.00"
    assert format_price(Decimal("60000.5")) == "60000.50"
    assert format_price(Decimal("60000.123456789")) == "60000.12345679"


def test_median_odd_and_even():
    assert median([Decimal(3), Decimal(1), Decimal(2)]) == 2
    assert median([Decimal(1), Decimal(4)]) == Decimal("2.5")
    with pytest.raises(ValueError):
        median([])


def test_one_provider_is_used_as_is():
    c = combine("USD", [q("a", "60000")], now=NOW, max_age=AGE, max_deviation=DEV)
    assert (c.price, c.as_of, c.discarded) == (Decimal("60000"), NOW, ())


def test_median_of_fresh_answers_and_outlier_discarded():
    c = combine("USD", [q("a", "60000", 1), q("b", "60300", 2), q("c", "70000")], now=NOW, max_age=AGE,
                max_deviation=DEV)
    assert c.price == Decimal("60150")                      # median of the two kept
    assert [x.source for x in c.kept] == ["a", "b"]
    assert [(x.source, why) for x, why in c.discarded] == [("c", "deviation")]
    assert c.as_of == NOW - dt.timedelta(minutes=2)         # the oldest kept answer


def test_stale_answers_are_left_out_before_the_median():
    c = combine("USD", [q("a", "60000", 11), q("b", "61000", 1)], now=NOW, max_age=AGE, max_deviation=DEV)
    assert c.price == Decimal("61000") and [(x.source, w) for x, w in c.discarded] == [("a", "stale")]
    none = combine("USD", [q("a", "60000", 11)], now=NOW, max_age=AGE, max_deviation=DEV)
    assert (none.ok, none.problem) == (False, "all_stale")


def test_two_providers_that_disagree_give_no_price():
    c = combine("USD", [q("a", "60000"), q("b", "66000")], now=NOW, max_age=AGE, max_deviation=DEV)
    assert (c.ok, c.problem, c.kept) == (False, "too_few_sources", ())
    close = combine("USD", [q("a", "60000"), q("b", "61000")], now=NOW, max_age=AGE, max_deviation=DEV)
    assert close.price == Decimal("60500")                  # 0.8 % each side: both kept


def test_quorum():
    c = combine("USD", [q("a", "60000")], now=NOW, max_age=AGE, max_deviation=DEV, min_sources=2)
    assert (c.ok, c.problem) == (False, "too_few_sources")


def test_future_dated_answer_is_refused_and_a_slightly_early_one_clamped():
    ahead = Quote("a", "USD", Decimal("60000"), NOW + dt.timedelta(hours=1))
    c = combine("USD", [ahead], now=NOW, max_age=AGE, max_deviation=DEV)
    assert (c.ok, [w for _, w in c.discarded]) == (False, ["future"])
    early = Quote("a", "USD", Decimal("60000"), NOW + dt.timedelta(seconds=20))
    assert combine("USD", [early], now=NOW, max_age=AGE, max_deviation=DEV).as_of == NOW


def test_other_currencies_are_ignored():
    c = combine("EUR", [q("a", "60000")], now=NOW, max_age=AGE, max_deviation=DEV)
    assert (c.ok, c.problem) == (False, "no_answers")
