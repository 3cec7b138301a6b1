"""Who may see a spend that awaits approval: its owner and the approver devices."""
from __future__ import annotations

from sqlalchemy.orm import Session

from cosigner import policy_service
from cosigner.errors import SpendNotFound
from cosigner.model import Account, Spend


def visible_spend(session: Session, spend_id: str, device_id: str) -> Spend:
    spend = session.get(Spend, spend_id) if isinstance(spend_id, str) and len(spend_id) <= 40 else None
    account = session.get(Account, spend.account_id) if spend else None
    if spend is None or account is None:
        raise SpendNotFound("no such spend")
    if account.owner_device_id == device_id:
        return spend
    rules = policy_service.current(session, account.id).approvals
    if rules is None or device_id not in rules.devices:
        raise SpendNotFound("no such spend")
    return spend
