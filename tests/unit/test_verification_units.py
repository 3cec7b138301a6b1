"""Out-of-band verification, pure parts: the privileged-actions table (README agrees with
the code, every enforced row is consulted where it says), the `verify` rule in the policy
engine (threshold, sweeps, fiat failing closed, what tightens and what loosens), tokens
and CSRF, and the log redaction of the page's URL."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from config.logging import redact
from cosigner import policy as engine
from cosigner import policy_changes
from prices.money import Rate
from verification import privileged, tokens

ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _intent(sat: int, sweep: bool = False) -> engine.Intent:
    return engine.Intent((("bcrt1qdest", sat),), 200, 2.0, frozenset({"a:0"}), sweep)


def test_readme_renders_the_privileged_actions_table():
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index("<!-- privileged-actions:start -->"), readme.index("<!-- privileged-actions:end -->")
    assert readme[start:end].split("\n", 1)[1].strip() == privileged.markdown_table()


@pytest.mark.parametrize("row", [p for p in privileged.PRIVILEGED if p.enforced], ids=lambda p: p.action)
def test_every_enforced_action_is_looked_up_where_the_table_says(row):
    source = (ROOT / row.enforced_in).read_text()
    assert f'"{row.action}"' in source


def test_unknown_actions_are_a_programming_error():
    with pytest.raises(KeyError):
        privileged.rule("spend.anything")


def test_verify_fires_above_the_threshold_only_and_never_for_sweeps():
    policy = engine.from_dict({"verify": {"above_sat": 100_000, "channel": "email"}})
    assert engine.evaluate(_intent(100_000), policy, [], NOW).verify is None
    above = engine.evaluate(_intent(100_001), policy, [], NOW)
    assert above.action == "approve" and above.verify == "email"
    assert {"rule": "verification_required", "channel": "email", "above_sat": 100_000, "amount_sat": 100_001} \
        in above.reasons
    assert engine.evaluate(_intent(10 ** 8, sweep=True), policy, [], NOW).verify is None


def test_a_fiat_threshold_converts_now_and_fails_closed_without_a_price():
    policy = engine.from_dict({"verify": {"above": {"max": "100.00", "currency": "USD"}}})
    rate = Rate("USD", Decimal("100000"), NOW, False)                       # 100 USD = 100,000 sat
    assert engine.evaluate(_intent(100_000), policy, [], NOW, rates={"USD": rate}).verify is None
    assert engine.evaluate(_intent(100_001), policy, [], NOW, rates={"USD": rate}).verify == "either"
    assert engine.evaluate(_intent(1_000), policy, [], NOW).verify == "either"          # no price
    stale = Rate("USD", Decimal("100000"), NOW, True)
    assert engine.evaluate(_intent(1_000), policy, [], NOW, rates={"USD": stale}).verify == "either"
    assert engine.currencies(policy) == {"USD"}


@pytest.mark.parametrize("old,new,loosens", [
    (None, {"above_sat": 5}, False),                                          # adding it tightens
    ({"above_sat": 5}, None, True),                                           # removing it waits
    ({"above_sat": 5}, {"above_sat": 50}, True),
    ({"above_sat": 50}, {"above_sat": 5}, False),
    ({"above_sat": 5, "channel": "either"}, {"above_sat": 5, "channel": "totp"}, False),
    ({"above_sat": 5, "channel": "totp"}, {"above_sat": 5, "channel": "either"}, True),
    ({"above_sat": 5, "channel": "totp"}, {"above_sat": 5, "channel": "email"}, True),
    ({"above_sat": 5}, {"above": {"max": "1.00", "currency": "USD"}}, True),  # another unit waits
])
def test_what_tightens_and_what_loosens(old, new, loosens):
    a, b = engine.from_dict({"verify": old}), engine.from_dict({"verify": new})
    assert policy_changes.loosens(a, b) is loosens


def test_the_rule_round_trips_through_its_json_form():
    for rule in ({"above_sat": 7, "channel": "totp"}, {"above": {"max": "12.50", "currency": "EUR"}, "channel": "either"}):
        assert engine.to_dict(engine.from_dict({"verify": rule}))["verify"] == rule


def test_tokens_are_128_bits_and_csrf_binds_to_the_view_token():
    t = tokens.new_token()
    assert tokens.well_formed(t) and len(t) == 22 and tokens.new_token() != t
    assert not tokens.well_formed("short") and not tokens.well_formed(None) and not tokens.well_formed("=" * 22)
    d = tokens.digest(t)
    assert t not in d and len(d) == 64
    csrf = tokens.csrf_token("k" * 32, d)
    assert tokens.csrf_ok("k" * 32, d, csrf)
    assert not tokens.csrf_ok("k" * 32, tokens.digest(tokens.new_token()), csrf)
    assert not tokens.csrf_ok("k" * 32, d, None)


def test_the_page_url_is_redacted_in_access_logs():
    view, token = tokens.new_token(), tokens.new_token()
    line = f'127.0.0.1 - - "GET /verify?view_token={view}&token={token} HTTP/1.1" 200 -'
    out = redact(line)
    assert view not in out and token not in out and "/verify?" in out
