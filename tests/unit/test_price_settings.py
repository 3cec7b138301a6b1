"""Price settings: parsing, defaults, bad values refused, production requires https and
refuses the fixed development provider, the API key stays out of repr."""
import pytest

from config.bootstrap import price_providers
from config.settings import Settings, SettingsError
from tests.unit.test_settings import GOOD_PROD


def test_defaults():
    s = Settings.from_env({})
    assert s.price_currencies == ("USD", "EUR") and s.price_providers == () and s.price_fixed == ()
    assert (s.price_max_deviation, s.price_max_age) == (0.02, 600)
    assert price_providers(s) == []


def test_providers_with_default_and_given_urls():
    s = Settings.from_env({"PRICE_PROVIDERS": "coingecko, coinbase=https://cb.example, spotbit=https://sb/api,"
                                              "spotbit=https://sb2/api",
                           "PRICE_FIXED": "usd:60000", "PRICE_CURRENCIES": "usd,eur,usd"})
    assert s.price_currencies == ("USD", "EUR") and s.price_fixed == (("USD", "60000"),)
    assert s.price_provider_urls() == [("coingecko", "https://api.coingecko.com/api/v3"),
                                       ("coinbase", "https://cb.example"), ("spotbit", "https://sb/api"),
                                       ("spotbit", "https://sb2/api")]
    assert [p.name for p in price_providers(s)] == ["coingecko", "coinbase", "spotbit", "spotbit-2", "fixed"]


@pytest.mark.parametrize("env", [
    {"PRICE_PROVIDERS": "binance"}, {"PRICE_PROVIDERS": "spotbit"}, {"PRICE_PROVIDERS": "coinbase=ftp://x"},
    {"PRICE_FIXED": "USD"}, {"PRICE_FIXED": "USD:-1"}, {"PRICE_FIXED": "USD:abc"}, {"PRICE_CURRENCIES": "DOLLAR"},
    {"PRICE_MAX_DEVIATION": "0.9"}, {"PRICE_MAX_DEVIATION": "x"}, {"PRICE_MAX_AGE": "5"},
    {"PRICE_MIN_SOURCES": "0"}, {"PRICE_RETRIES": "9"}])
def test_bad_price_settings_are_refused(env):
    with pytest.raises(SettingsError):
        Settings.from_env(env)


def test_production_requires_https_and_no_fixed_price():
    ok = {**GOOD_PROD, "PRICE_PROVIDERS": "coingecko,coinbase"}
    assert Settings.from_env(ok).validate().production
    with pytest.raises(SettingsError) as err:
        Settings.from_env({**GOOD_PROD, "PRICE_PROVIDERS": "spotbit=http://spotbit.lan/api"}).validate()
    assert "https" in str(err.value)
    with pytest.raises(SettingsError) as err:
        Settings.from_env({**GOOD_PROD, "PRICE_FIXED": "USD:60000"}).validate()
    assert "PRICE_FIXED" in str(err.value)


def test_api_key_stays_out_of_repr():
    assert "cg-secret" not in repr(Settings.from_env({"PRICE_COINGECKO_API_KEY": "cg-secret"}))
