"""The beneficiary proves it rebuilt the recovery key: the same completion signature
as recovery (recovery.secrets_box.completion_message: SHA-256 of
"custos-recovery-complete-v1\\0" ‖ claim id ‖ "\\0" ‖ the claim's challenge, signed by
the recovery account key's child /9/0). The proof gives the right to one sweep; the
claim stays `released` (and cancellable) until that sweep is broadcast."""
from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from audit import services as audit
from cosigner.model import Account
from inheritance.claims import get_for_beneficiary
from inheritance.context import InheritanceContext
from inheritance.errors import ClaimClosed, ClaimConflict
from inheritance.model import InheritanceClaim
from recovery.secrets_box import verify_completion


def prove(session: Session, ctx: InheritanceContext, claim_id, device_id: str, signature: bytes,
          now: dt.datetime) -> InheritanceClaim:
    """Record the recovery-key proof. Raises ClaimNotFound (not the beneficiary),
    ClaimClosed (cancelled/expired/completed), ClaimConflict (`claim_not_released`),
    recovery.errors.ProofInvalid (nothing changes). Idempotent once proven."""
    claim = get_for_beneficiary(session, claim_id, device_id, lock=True)
    if claim.state in ("cancelled", "expired", "completed"):
        raise ClaimClosed(f"this inheritance claim is {claim.state}", details={"state": claim.state})
    if claim.state != "released":
        raise ClaimConflict("the claim can be completed once the operator's share is released",
                            code="claim_not_released", details={"state": claim.state})
    if claim.expires_at is not None and now >= claim.expires_at:
        from inheritance.timeline import advance
        advance(session, ctx, claim.id, now)
        raise ClaimClosed(f"this inheritance claim is {claim.state}", details={"state": claim.state})
    if claim.proven_at is not None:
        return claim
    account = session.get(Account, claim.account_id)
    if not (account.recovery_key or {}).get("xpub"):
        raise ClaimConflict("this account has no registered recovery key", code="no_recovery_key")
    verify_completion(account.recovery_key["xpub"], claim.id, claim.challenge, signature)
    claim.proven_at, claim.updated_at = now, now
    audit.record(session, actor=device_id, action="inheritance.proven", subject=claim.id,
                 details={"account": claim.account_id}, now=now)
    return claim
