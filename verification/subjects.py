"""The built-in subject kinds and what a confirmation or a cancellation does to each.

- `spend`: a confirmation hands the held spend back to the signing gate
  (cosigner.gate.confirm_verified), which re-decides with the state of now; a
  cancellation cancels it and frees its coins.
- `policy_change`: a confirmation applies the pending change if its delay is over (else
  the `policy.apply` job does, now that it is confirmed); a cancellation cancels it.
- `channel`: the same for a channel replacement or removal.
- `inheritance_change`, `recovery_setup_change`: registered by inheritance.verify and
  recovery.setup_changes.
"""
from __future__ import annotations

from verification.services import register_kind


def _spend_confirmed(session, ctx, req, now) -> str:
    from cosigner import gate
    return gate.confirm_verified(session, ctx, req.subject_id, via=req.confirmed_via, now=now).state


def _spend_cancelled(session, ctx, req, reason, now) -> None:
    from cosigner import gate
    gate.cancel_unverified(session, ctx, req.subject_id, reason=reason, now=now)


def _change_confirmed(session, ctx, req, now) -> str:
    from cosigner.policy_service import apply_change
    return "applied" if apply_change(session, req.subject_id, now) else "confirmed"


def _change_cancelled(session, ctx, req, reason, now) -> None:
    from cosigner.model import Account, PolicyChange
    from cosigner.policy_service import cancel_change
    change = session.get(PolicyChange, req.subject_id)
    if change is not None:
        cancel_change(session, session.get(Account, change.account_id), change.id, actor=f"verification:{reason}",
                      now=now)


def _channel_confirmed(session, ctx, req, now) -> str:
    from verification.channels import apply_change
    return "applied" if apply_change(session, req.subject_id, now) else "confirmed"


def _channel_cancelled(session, ctx, req, reason, now) -> None:
    from verification.channels import abandon_change
    abandon_change(session, req.subject_id, now)


register_kind("spend", _spend_confirmed, _spend_cancelled)
register_kind("policy_change", _change_confirmed, _change_cancelled)
register_kind("channel", _channel_confirmed, _channel_cancelled)

import inheritance.verify  # noqa: E402,F401  (registers `inheritance_change`)
import recovery.setup_changes  # noqa: E402,F401  (registers `recovery_setup_change`)
