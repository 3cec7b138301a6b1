"""The chain watcher: follows an account's wallet with `listsinceblock` and updates
spends (broadcast → confirmed → deep, conflicted, abandoned) and incoming payments,
notifying the owner's device. Safe to run twice or concurrently: the account row is
locked for the pass and seen transactions are unique per account."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from chain import wallets
from cosigner.context import CosignerContext
from cosigner.model import DEEP_CONFIRMATIONS, Account, SeenTransaction, Spend


def status_of(tx: dict) -> str:
    """mempool / confirmed / deep / conflicted / abandoned, from a wallet tx entry."""
    conf = int(tx.get("confirmations", 0))
    if tx.get("abandoned"):
        return "abandoned"
    if conf < 0:
        return "conflicted"
    if conf >= DEEP_CONFIRMATIONS:
        return "deep"
    return "confirmed" if conf > 0 else "mempool"


_SPEND_STATE = {"mempool": "broadcast", "confirmed": "confirmed", "deep": "deep",
                "conflicted": "conflicted", "abandoned": "abandoned"}


def watch(session: Session, ctx: CosignerContext, account_id: str, now: dt.datetime) -> int:
    """One pass over one account. Returns the number of state changes."""
    account = session.scalar(select(Account).where(Account.id == account_id).with_for_update())
    if account is None or account.imported_at is None:
        return 0
    wallet = wallets.wallet_for(ctx.node, ctx.wallet_prefix, account.id)
    wallets.wait_synced(ctx.node)
    result = wallet.call("listsinceblock", account.chain_cursor or "", DEEP_CONFIRMATIONS, True, True)
    changes = 0
    by_txid: dict[str, dict] = {}
    for tx in result.get("transactions", []):
        by_txid.setdefault(tx["txid"], tx)
    for txid, tx in by_txid.items():
        status = status_of(tx)
        for spend in session.scalars(select(Spend).where(Spend.account_id == account.id, Spend.txid == txid)):
            new_state = _SPEND_STATE[status]
            if spend.state in ("replaced", "cancelled"):
                continue
            if spend.state != new_state or spend.confirmations != max(0, int(tx.get("confirmations", 0))):
                if spend.state != new_state and new_state in ("confirmed", "conflicted"):
                    ctx.notify(session, account.owner_device_id, f"spend_{new_state}", now)
                spend.state, spend.confirmations, spend.updated_at = new_state, max(0, int(tx["confirmations"])), now
                changes += 1
        if tx.get("category") == "receive":
            seen = session.scalar(select(SeenTransaction).where(SeenTransaction.account_id == account.id,
                                                                SeenTransaction.txid == txid))
            if seen is None:
                session.add(SeenTransaction(account_id=account.id, txid=txid, status=status, updated_at=now))
                ctx.notify(session, account.owner_device_id, "receive", now)
                changes += 1
            elif seen.status != status:
                seen.status, seen.updated_at = status, now
                changes += 1
    account.chain_cursor = result.get("lastblock") or account.chain_cursor
    return changes
