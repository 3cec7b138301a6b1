"""Named constants for recovery (the configurable ones have settings; see config/settings.py)."""
from __future__ import annotations

import datetime as dt

OTP_DIGITS = 6
OTP_TTL = dt.timedelta(minutes=10)
OTP_MAX_ATTEMPTS = 5
OTP_RESEND_COOLDOWN = dt.timedelta(seconds=30)
MIN_RECOVERY_DELAY = dt.timedelta(hours=24)
SEALING_KEY_BYTES = 32                 # X25519 public key
MAX_SEALED_SHARE_BYTES = 4096          # a sealed SLIP-39 mnemonic is ~400 bytes
MAX_HOLDERS = 16
MAX_GROUPS = 16
MAX_EMAIL = 254
CHALLENGE_BYTES = 32
COMPLETE_PATH = (9, 0)                 # non-hardened, below the recovery key's BIP48 account xpub
CUSTODY_PROOF_MAX_AGE = dt.timedelta(days=30)   # an answer older than this no longer counts
MAX_BACKUP_BYTES = 1 << 20             # 1 MiB (decoded blob)
KEEP_BACKUPS = 10
MAX_BACKUPS_PER_HOUR = 6               # new versions per account per hour (each up to 1 MiB)
BACKUP_REMINDER_REPEAT = dt.timedelta(days=7)
STAFF_APPROVALS_TO_RELEASE = 2
