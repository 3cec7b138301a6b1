"""Named limits of out-of-band verification (the configurable ones are settings:
VERIFY_TTL, VERIFY_BASE_URL)."""
from __future__ import annotations

import datetime as dt

TOKEN_BYTES = 16                          # each of the view / confirm / cancel tokens: 128 bits
CODE_TTL = dt.timedelta(minutes=10)       # an e-mail confirmation code lives this long
CODE_MAX_ATTEMPTS = 5                     # wrong e-mail codes before the pending address is dropped
TOTP_MAX_ATTEMPTS = 5                     # wrong TOTP codes before the request (and its spend) is cancelled
TOTP_ISSUER = "Custos"
CHANNEL_KINDS = ("email", "totp")
CHANNEL_CHOICES = ("email", "totp", "either")
