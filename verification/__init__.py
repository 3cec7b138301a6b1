"""Out-of-band verification (issue #17): a second channel the phone thief does not hold.

An owner registers channels for an account (an e-mail address confirmed by a mailed
code, a TOTP authenticator confirmed by a first code). A privileged action (a large
spend, a loosening, a channel change — see `privileged.PRIVILEGED`) on such an account
opens a *verification request* for its subject; the owner confirms or cancels it on the
channel: the e-mailed page (`/verify`, three single-use tokens) or a TOTP code.

The mechanism is generic over subjects: `require()` opens a request for (subject_kind,
subject_id), `satisfied()` tells whether it was confirmed, and a small registry of kinds
(`services.register_kind`) runs the subject's `on_confirm` / `on_cancel` when the owner
decides. Kinds registered here: `spend`, `policy_change`, `channel` (verification.subjects).
"""
from __future__ import annotations

from verification.services import outstanding, protect, register_kind, require, satisfied, withdraw  # noqa: F401
