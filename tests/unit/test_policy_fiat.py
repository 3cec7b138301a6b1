"""Fiat rules in the pure policy engine: per-transaction caps and rolling limits in a
currency, converted with the price passed in (rounded down to satoshis), a limit that
passes at one price and fires after a price move, the window re-valued at today's price,
fail closed on a stale or missing price (`price_unavailable`), the rates recorded in the
decision, and tightening / loosening / rebasing of fiat rules."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from cosigner.policy import (FiatAmount, HistoryEntry, Intent, Limit, Policy, evaluate, from_dict, to_dict)
from cosigner.policy_changes import loosens, rebase, tightened
from prices.money import Rate

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.timezone.utc)
USD500 = FiatAmount(Decimal("500.00"), "USD")


def usd(price, *, stale=False, minutes_ago=1):
    return {"USD": Rate("USD", Decimal(price), NOW - dt.timedelta(minutes=minutes_ago), stale=stale)}


def intent(amount, outpoints=("t1:0",)):
    return Intent((("bcrt1qdest", amount),), 300, 2.0, frozenset(outpoints))


def spent(hours_ago, amount):
    return HistoryEntry(NOW - dt.timedelta(hours=hours_ago), amount, frozenset({f"old{hours_ago}:0"}))


def rules(d):
    return [r["rule"] for r in d.reasons]


def test_fiat_cap_converts_at_the_price_given_and_records_the_rate():
    p = Policy(max_per_tx_fiat=USD500)
    ok = evaluate(intent(833_333), p, [], NOW, rates=usd("60000"))       # $499.9998
    assert ok.action == "approve" and dict(ok.rates)["USD"]["rate"] == "60000"
    d = evaluate(intent(833_334), p, [], NOW, rates=usd("60000"))
    assert d.action == "deny" and d.reasons == ({
        "rule": "max_per_tx", "currency": "USD", "limit": "500.00", "rate": "60000", "limit_sat": 833_333,
        "amount_sat": 833_334, "amount": "500.00"},)
    assert d.as_dict()["rates"] == {"USD": {"rate": "60000", "as_of": (NOW - dt.timedelta(minutes=1)).isoformat()}}


def test_a_daily_fiat_limit_passes_at_one_price_and_fires_after_a_price_move():
    p = Policy(limits=(Limit("24h", fiat=USD500),))
    history = [spent(3, 500_000)]                      # 0.005 BTC earlier today
    spend = intent(300_000)                            # 0.003 BTC now: 0.008 BTC in the window
    assert evaluate(spend, p, history, NOW, rates=usd("60000")).action == "approve"    # $480
    d = evaluate(spend, p, history, NOW, rates=usd("65000"))                         # $520
    assert d.action == "deny" and d.reasons[0] == {
        "rule": "velocity_limit", "window": "24h", "currency": "USD", "limit": "500.00", "rate": "65000",
        "limit_sat": 769_230, "used_sat": 500_000, "amount_sat": 300_000, "used": "325.00", "amount": "195.00"}


def test_the_window_is_revalued_at_the_price_of_now():
    """0.005 BTC sent when 1 BTC was $60,000 ($300 then) counts $500 once BTC is $100,000:
    every spend in the window is valued at today's price, not at its signing-time price."""
    p = Policy(limits=(Limit("24h", fiat=USD500),))
    history = [spent(5, 500_000)]
    assert evaluate(intent(200_000), p, history, NOW, rates=usd("60000")).action == "approve"   # $300 + $120
    d = evaluate(intent(200_000), p, history, NOW, rates=usd("100000"))
    assert d.action == "deny" and (d.reasons[0]["used"], d.reasons[0]["amount"]) == ("500.00", "200.00")
    later = NOW + dt.timedelta(hours=20)                                                        # window slid past
    assert evaluate(intent(200_000), p, history, later, rates=usd("100000")).action == "approve"


def test_stale_or_missing_price_fails_closed():
    p = Policy(max_per_tx_fiat=USD500, limits=(Limit("24h", fiat=USD500),))
    for rates in (None, {}, usd("60000", stale=True, minutes_ago=30), {"EUR": Rate("EUR", Decimal(1), NOW)}):
        d = evaluate(intent(1_000), p, [], NOW, rates=rates)
        assert d.action == "deny" and rules(d) == ["price_unavailable", "price_unavailable"]
        assert [r["applies_to"] for r in d.reasons] == ["max_per_tx", "velocity_limit"]
        assert d.rates == ()
    stale = evaluate(intent(1_000), p, [], NOW, rates=usd("60000", stale=True, minutes_ago=30))
    assert stale.reasons[0]["price_as_of"] == (NOW - dt.timedelta(minutes=30)).isoformat()


def test_a_spend_that_sends_nothing_out_is_not_refused_by_fiat_rules():
    p = Policy(max_per_tx_fiat=USD500, limits=(Limit("24h", fiat=USD500),))
    assert evaluate(intent(0), p, [], NOW, rates=None).action == "approve"


def test_satoshi_and_fiat_limits_on_one_window_both_apply():
    p = Policy(limits=(Limit("24h", 1_000_000), Limit("24h", fiat=USD500)))
    assert evaluate(intent(900_000), p, [], NOW, rates=usd("60000")).action == "deny"           # $540
    assert evaluate(intent(900_000), p, [], NOW, rates=usd("50000")).action == "approve"        # $450
    d = evaluate(intent(1_100_000), p, [], NOW, rates=usd("40000"))                             # $440, > 1M sat
    assert d.action == "deny" and d.reasons[0]["limit_sat"] == 1_000_000


def test_json_round_trip():
    rules_json = {"max_per_tx": {"max": "250", "currency": "EUR"},
                  "limits": [{"window": "7d", "max": "1000.5", "currency": "USD"}, {"window": "24h", "max_sat": 5}]}
    p = from_dict(rules_json)
    assert p.max_per_tx_fiat == FiatAmount(Decimal("250.00"), "EUR")
    assert p.limits == (Limit("24h", 5), Limit("7d", fiat=FiatAmount(Decimal("1000.50"), "USD")))
    d = to_dict(p)
    assert d["max_per_tx"] == {"max": "250.00", "currency": "EUR"}
    assert d["limits"] == [{"window": "24h", "max_sat": 5}, {"window": "7d", "max": "1000.50", "currency": "USD"}]
    assert from_dict(d) == p


def test_tightening_and_loosening_fiat_rules():
    old = Policy(max_per_tx_fiat=USD500, limits=(Limit("24h", 1_000_000),))
    lower = Policy(max_per_tx_fiat=FiatAmount(Decimal("100"), "USD"), limits=(Limit("24h", 1_000_000),))
    assert not loosens(old, lower) and tightened(old, lower).max_per_tx_fiat.max == Decimal("100")
    higher = Policy(max_per_tx_fiat=FiatAmount(Decimal("900"), "USD"), limits=(Limit("24h", 1_000_000),))
    assert loosens(old, higher) and tightened(old, higher).max_per_tx_fiat == USD500
    euros = Policy(max_per_tx_fiat=FiatAmount(Decimal("10"), "EUR"), limits=(Limit("24h", 1_000_000),))
    assert loosens(old, euros) and tightened(old, euros).max_per_tx_fiat == USD500     # other currency waits
    removed = Policy(limits=(Limit("24h", 1_000_000),))
    assert loosens(old, removed) and tightened(old, removed).max_per_tx_fiat == USD500
    # a fiat limit replacing the satoshi one: the fiat one applies at once, the satoshi one stays until the delay
    swap = Policy(max_per_tx_fiat=USD500, limits=(Limit("24h", fiat=USD500),))
    now_part = tightened(old, swap)
    assert now_part.limits == (Limit("24h", 1_000_000), Limit("24h", fiat=USD500)) and loosens(old, swap)


def test_rebase_merges_fiat_limits_per_window_and_currency():
    base = to_dict(Policy(limits=(Limit("24h", 1_000_000),)))
    target = to_dict(Policy(limits=(Limit("24h", fiat=USD500),)))             # the owner swapped units
    current = to_dict(Policy(limits=(Limit("24h", 1_000_000), Limit("24h", fiat=USD500),
                                     Limit("7d", fiat=FiatAmount(Decimal("900"), "USD"))), frozen=True))
    out = from_dict(rebase(base, target, current))
    assert out.limits == (Limit("24h", fiat=USD500), Limit("7d", fiat=FiatAmount(Decimal("900"), "USD")))
    assert out.frozen is True
