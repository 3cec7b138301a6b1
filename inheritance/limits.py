"""Named limits of the inheritance feature (issue #18). Durations that operators tune
are settings (config/settings.py: INHERITANCE_REMINDER_INTERVAL, INHERITANCE_RELEASE_TTL;
plan loosening waits POLICY_LOOSEN_DELAY like a policy loosening)."""
from __future__ import annotations

import datetime as dt

WAITING_DAYS_DEFAULT = 180
WAITING_DAYS_MIN = 30
WAITING_DAYS_MAX = 730
MAX_BENEFICIARIES = 5
MAX_LABEL = 64
CLAIM_BLOCK = dt.timedelta(days=30)             # a cancelled claim blocks that beneficiary's new claims this long
FINAL_REMINDERS = (dt.timedelta(days=7), dt.timedelta(days=1))   # extra reminders before the wait ends
CHALLENGE_BYTES = 32
SEALING_KEY_BYTES = 32
