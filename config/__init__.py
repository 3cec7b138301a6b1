"""Settings, logging and Celery configuration.

`config.settings.Settings.from_env()` is the only reader of the process environment in
Custos; everything else receives a `Settings` object. Adapters (database engine, broker,
bitcoind client, push sender, mailer, key vault) are built from it in one place
(`config.bootstrap`), never at import time.
"""
from config.settings import Settings, SettingsError  # noqa: F401
