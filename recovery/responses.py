"""Recovery cases, holder side: list the cases where the caller holds a share, hand in
a sealed share (a NaCl sealed box to the requester's key: bytes the server cannot open)
or decline."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audit import services as audit
from recovery import machine
from recovery.cases import advance, get
from recovery.context import RecoveryContext
from recovery.errors import CaseClosed, CaseStateError, InvalidShare, NotHolder, TooLarge
from recovery.limits import MAX_SEALED_SHARE_BYTES
from recovery.model import RecoveryCase, RecoveryHolder, RecoveryResponse
from recovery.secrets_box import verification_phrase

SEAL_OVERHEAD = 48   # X25519 ephemeral key + Poly1305 tag


def requests_for(session: Session, device_id: str) -> list[dict]:
    """Open cases (collecting/waiting/released) of setups where `device_id` holds a share."""
    rows = session.execute(
        select(RecoveryCase, RecoveryHolder).join(RecoveryHolder, RecoveryHolder.setup_id == RecoveryCase.setup_id)
        .where(RecoveryHolder.device_id == device_id, RecoveryCase.state.in_(machine.CONTACT_STATES),
               RecoveryCase.requester_device_id != device_id)
        .order_by(RecoveryCase.created_at)).all()
    out = []
    for case, holder in rows:
        mine = session.scalar(select(RecoveryResponse).where(RecoveryResponse.case_id == case.id,
                                                             RecoveryResponse.holder_id == holder.id))
        out.append({"case_id": case.id, "holder_id": holder.id, "state": case.state,
                    "requester_device_id": case.requester_device_id, "sealing_key": case.sealing_key,
                    "verification_phrase": verification_phrase(case.id, case.sealing_key),
                    "delay_ends_at": case.delay_ends_at, "expires_at": case.expires_at,
                    "response": None if mine is None else ("declined" if mine.declined else "sealed_share")})
    return out


def _holder(session, case, device_id) -> RecoveryHolder:
    holder = session.scalar(select(RecoveryHolder).where(RecoveryHolder.setup_id == case.setup_id,
                                                         RecoveryHolder.device_id == device_id).limit(1))
    if holder is None or case.account_id is None or device_id == case.requester_device_id:
        raise NotHolder("you hold no share for this recovery")
    return holder


def respond(session: Session, ctx: RecoveryContext, case_id, device_id: str, *, sealed: bytes | None,
            now: dt.datetime) -> RecoveryResponse:
    """Store a holder's sealed share (or decline when `sealed` is None). Idempotent for
    the same answer; a different second answer is refused (409). A share may arrive
    while the case is collecting, waiting or released."""
    case = get(session, case_id, lock=True)
    holder = _holder(session, case, device_id)
    if case.state not in machine.CONTACT_STATES:
        if case.state in machine.OPEN_STATES:
            raise CaseStateError("the case is not collecting shares yet", code="case_not_collecting")
        raise CaseClosed(f"this recovery case is {case.state}", details={"state": case.state})
    if sealed is not None and len(sealed) > MAX_SEALED_SHARE_BYTES:
        raise TooLarge(f"sealed_share must be at most {MAX_SEALED_SHARE_BYTES} bytes", field="sealed_share",
                       max_bytes=MAX_SEALED_SHARE_BYTES)
    if sealed is not None and not SEAL_OVERHEAD < len(sealed):
        raise InvalidShare(f"sealed_share must be a NaCl sealed box of at most {MAX_SEALED_SHARE_BYTES} bytes",
                           code="invalid_sealed_share")
    existing = session.scalar(select(RecoveryResponse).where(RecoveryResponse.case_id == case.id,
                                                             RecoveryResponse.holder_id == holder.id))
    if existing is not None:
        if existing.sealed == sealed and existing.declined == (sealed is None):
            return existing
        raise CaseStateError("you already answered this recovery", code="already_answered")
    row = RecoveryResponse(case_id=case.id, holder_id=holder.id, device_id=device_id, sealed=sealed,
                           declined=sealed is None, created_at=now)
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise CaseStateError("you already answered this recovery", code="already_answered") from None
    audit.record(session, actor=device_id, action="recovery.declined" if sealed is None else "recovery.answered",
                 subject=case.id, details={"account": case.account_id, "holder": holder.id}, now=now)
    from recovery.notices import push
    push(session, case.requester_device_id, "recovery_update", now)
    advance(session, ctx, case.id, now)
    return row


def received(session: Session, case_id: str) -> list[RecoveryResponse]:
    return list(session.scalars(select(RecoveryResponse).where(RecoveryResponse.case_id == case_id)
                                .order_by(RecoveryResponse.id)))
