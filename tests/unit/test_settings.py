"""Settings: parsing, and production refusing default or missing secrets."""
import pytest

from config.settings import DEV_SECRET_KEY, Settings, SettingsError

GOOD_PROD = {
    "CUSTOS_ENV": "production", "SECRET_KEY": "s" * 40, "MASTER_KEY_FILE": "/run/secrets/master",
    "DATABASE_URL": "postgresql+psycopg://custos@db/custos", "REDIS_URL": "redis://cache:6379/0",
    "BITCOIND_RPC_PASSWORD": "a-real-password", "VERIFY_BASE_URL": "https://wallet.example",
}


def test_defaults_are_embedded_development():
    s = Settings.from_env({})
    assert s.env == "development" and s.database_url.startswith("sqlite:///")
    assert s.embedded_broker and s.redis_url is None
    assert s.validate() is s  # development accepts defaults


def test_redis_url_becomes_the_broker_unless_broker_url_is_set():
    assert Settings.from_env({"REDIS_URL": "redis://r/1"}).broker_url == "redis://r/1"
    assert Settings.from_env({"REDIS_URL": "redis://r/1", "BROKER_URL": "redis://b/2"}).broker_url == "redis://b/2"


def test_good_production_config_passes():
    assert Settings.from_env(GOOD_PROD).validate().production


@pytest.mark.parametrize("change,needle", [
    ({"SECRET_KEY": DEV_SECRET_KEY}, "SECRET_KEY"),
    ({"SECRET_KEY": "short"}, "SECRET_KEY"),
    ({"MASTER_KEY_FILE": ""}, "MASTER_KEY"),
    ({"DATABASE_URL": "sqlite:///x.db"}, "DATABASE_URL"),
    ({"REDIS_URL": ""}, "REDIS_URL"),
    ({"BITCOIND_RPC_PASSWORD": "custos-dev"}, "BITCOIND_RPC_PASSWORD"),
    ({"ONESIGNAL_APP_ID": "app"}, "ONESIGNAL_API_KEY"),
])
def test_production_refuses_defaults_and_missing_secrets(change, needle):
    env = {**GOOD_PROD, **change}
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env).validate()
    assert needle in str(info.value)


def test_refusal_never_echoes_a_secret():
    env = {**GOOD_PROD, "SECRET_KEY": "tiny-secret"}
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env).validate()
    assert "tiny-secret" not in str(info.value)


def test_secrets_stay_out_of_repr():
    s = Settings.from_env({**GOOD_PROD, "MASTER_KEY": "bWFzdGVy", "ONESIGNAL_API_KEY": "os-key",
                           "SMTP_PASSWORD": "smtp-pw"})
    text = repr(s)
    assert "bWFzdGVy" not in text and "os-key" not in text and "smtp-pw" not in text


@pytest.mark.parametrize("env", [{"CUSTOS_ENV": "staging"}, {"NETWORK": "mainnet"}, {"SIGNATURE_WINDOW": "5"},
                                 {"SMTP_PORT": "abc"}, {"RATELIMIT_ENABLED": "maybe"}, {"LOG_LEVEL": "LOUD"}])
def test_malformed_values_are_refused(env):
    with pytest.raises(SettingsError):
        Settings.from_env(env)


def test_cookie_file_credentials(tmp_path):
    cookie = tmp_path / ".cookie"
    cookie.write_text("__cookie__:abc123\n")
    s = Settings.from_env({"BITCOIND_RPC_COOKIE": str(cookie)})
    assert s.rpc_credentials() == ("__cookie__", "abc123")


@pytest.mark.parametrize("change,needle", [
    ({"ONESIGNAL_HOST": "http://api.onesignal.com"}, "ONESIGNAL_HOST"),
    ({"BITCOIND_RPC_URL": "http://node.example.com:8332"}, "BITCOIND_RPC_URL"),
    ({"BITCOIND_RPC_URL": "http://93.184.216.34:8332"}, "BITCOIND_RPC_URL"),
    ({"BITCOIND_RPC_URL": "ftp://10.0.0.2"}, "BITCOIND_RPC_URL"),
])
def test_production_refuses_plaintext_outbound_urls(change, needle):
    """Issue #14: ONESIGNAL_HOST (and any other outbound URL) must be https in production."""
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**GOOD_PROD, **change}).validate()
    assert needle in str(info.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8332", "http://10.1.2.3:8332", "http://bitcoind:8332",
                                 "http://localhost:8332", "https://node.example.com:8332"])
def test_production_accepts_bitcoind_on_a_private_network_or_tls(url):
    assert Settings.from_env({**GOOD_PROD, "BITCOIND_RPC_URL": url}).validate().production
