"""What inheritance services need from the outside, built from settings in one place."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from recovery.context import RecoveryContext


@dataclass
class InheritanceContext:
    recovery: RecoveryContext        # keyring (operator share), mailer, message TTL
    reminder_every: dt.timedelta     # INHERITANCE_REMINDER_INTERVAL
    release_ttl: dt.timedelta        # INHERITANCE_RELEASE_TTL: a released claim not swept by then expires
    loosen_delay: dt.timedelta       # POLICY_LOOSEN_DELAY: adding a beneficiary / shortening the wait waits this long
    cosigner: object | None = None   # the CosignerContext (its `.verification`): out-of-band confirmation of loosenings


def inheritance_context(settings, recovery: RecoveryContext | None = None, cosigner=None) -> InheritanceContext:
    """Build the context; `recovery` defaults to one built from `settings`. Without
    `cosigner` (the workers' timed steps) a loosening cannot be proposed on an account
    with a verification channel (verification.protect refuses)."""
    from recovery.context import recovery_context
    return InheritanceContext(
        recovery=recovery or recovery_context(settings),
        reminder_every=dt.timedelta(seconds=settings.inheritance_reminder_interval),
        release_ttl=dt.timedelta(seconds=settings.inheritance_release_ttl),
        loosen_delay=dt.timedelta(seconds=settings.policy_loosen_delay), cosigner=cosigner)
