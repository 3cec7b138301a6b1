"""Who can be a beneficiary of an account: checked when the owner names one and again
when the naming takes effect, always against the state of now."""
from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from cosigner.model import Account
from devices.model import Device
from inheritance.errors import InvalidPlan
from messaging.model import Contact
from recovery import shares
from recovery.model import RecoveryHolder, RecoverySetup


def is_contact(session: Session, a: str, b: str) -> bool:
    """Whether devices `a` and `b` are messaging contacts (the pair is stored sorted)."""
    lo, hi = sorted((a, b))
    return session.scalar(select(Contact.id).where(and_(Contact.device_a == lo, Contact.device_b == hi))
                          .limit(1)) is not None


def check(session: Session, account: Account, setup: RecoverySetup, device_id: str) -> RecoveryHolder:
    """The beneficiary's holder slot when `device_id` may be a beneficiary of `account`:
    an active device other than the owner, a messaging contact of the owner, a device
    holder of the current recovery setup with role `beneficiary`, whose share plus the
    operator's reach the scheme's thresholds. Raises InvalidPlan with the first failing
    reason's code (beneficiary_is_owner, beneficiary_unknown, beneficiary_not_contact,
    beneficiary_not_holder, beneficiary_below_threshold) and `details.device_id`."""
    details = {"device_id": device_id}
    if device_id == account.owner_device_id:
        raise InvalidPlan("the owner cannot be its own beneficiary", code="beneficiary_is_owner", details=details)
    device = session.get(Device, device_id)
    if device is None or device.revoked:
        raise InvalidPlan("the beneficiary device is unknown or revoked", code="beneficiary_unknown", details=details)
    if not is_contact(session, account.owner_device_id, device_id):
        raise InvalidPlan("a beneficiary must be one of the owner's messaging contacts",
                          code="beneficiary_not_contact", details=details)
    holders = list(session.scalars(select(RecoveryHolder).where(
        RecoveryHolder.setup_id == setup.id,
        or_(RecoveryHolder.kind == "operator",
            and_(RecoveryHolder.device_id == device_id, RecoveryHolder.role == "beneficiary")))))
    own = [h for h in holders if h.kind == "device"]
    if not own:
        raise InvalidPlan("a beneficiary must hold a share of the recovery setup with role beneficiary",
                          code="beneficiary_not_holder", details=details)
    operator = {(h.group_index, h.member_index) for h in holders if h.kind == "operator"}
    scheme = shares.parse_scheme(setup.scheme)
    for h in own:
        if shares.recoverable(scheme, operator | {(h.group_index, h.member_index)}):
            return h
    raise InvalidPlan("the beneficiary's share and the operator's do not reach the recovery threshold",
                      code="beneficiary_below_threshold", details=details)
