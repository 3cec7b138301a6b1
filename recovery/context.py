"""What recovery services need from the outside, built from settings in one place."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cosigner.vault import KeyWrapper
from recovery.budget import GuessBudget, SqlGuessBudget
from recovery.mailer import Mailer


@dataclass
class RecoveryContext:
    keyring: KeyWrapper
    mailer: Mailer
    email_key: bytes
    delay: dt.timedelta
    case_ttl: dt.timedelta
    reminder_every: dt.timedelta
    message_ttl: dt.timedelta
    guesses: GuessBudget = field(default_factory=SqlGuessBudget)   # OTP budgets per email / account
    loosen_delay: dt.timedelta = dt.timedelta(hours=72)   # POLICY_LOOSEN_DELAY: a setup replacement waits this long


def recovery_context(settings, keyring: KeyWrapper | None = None) -> RecoveryContext:
    """Build the context; `keyring` defaults to the master-key keyring from settings."""
    from cosigner.vault import keyring_from_settings
    from recovery.budget import budget_from_settings
    from recovery.mailer import mailer_from_settings
    from recovery.secrets_box import email_key
    keyring = keyring or keyring_from_settings(settings)
    return RecoveryContext(
        keyring=keyring, mailer=mailer_from_settings(settings, keyring), email_key=email_key(settings.secret_key),
        delay=dt.timedelta(seconds=settings.recovery_delay), case_ttl=dt.timedelta(seconds=settings.recovery_case_ttl),
        reminder_every=dt.timedelta(seconds=settings.recovery_reminder_interval),
        message_ttl=dt.timedelta(seconds=settings.message_ttl), guesses=budget_from_settings(settings),
        loosen_delay=dt.timedelta(seconds=settings.policy_loosen_delay))
