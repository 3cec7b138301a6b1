"""What verification needs from the outside, built from settings in one place
(config/bootstrap.cosigner_context puts it on the CosignerContext as `.verification`)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cosigner.vault import KeyWrapper
from recovery.mailer import Mailer


@dataclass
class VerificationContext:
    keyring: KeyWrapper
    mailer: Mailer                 # recovery's outbox / SMTP mailer
    email_key: bytes               # HMAC key for address lookups (recovery.secrets_box.email_key)
    base_url: str                  # VERIFY_BASE_URL, no trailing slash
    ttl: dt.timedelta              # VERIFY_TTL
    change_delay: dt.timedelta     # POLICY_LOOSEN_DELAY: how long a channel change waits


def verification_context(settings, keyring: KeyWrapper) -> VerificationContext:
    from recovery.mailer import mailer_from_settings
    from recovery.secrets_box import email_key
    return VerificationContext(keyring=keyring, mailer=mailer_from_settings(settings, keyring),
                               email_key=email_key(settings.secret_key), base_url=settings.verify_base_url,
                               ttl=dt.timedelta(seconds=settings.verify_ttl),
                               change_delay=dt.timedelta(seconds=settings.policy_loosen_delay))
