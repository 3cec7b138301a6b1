"""Record a transaction Custos itself just broadcast, without waiting for the next
mempool pass, in the caller's transaction (so a spend's inputs show as spent at once).

The same code as the mempool pass (chain.apply.Applier on one unconfirmed
transaction), so the pass that later sees it in the mempool changes nothing.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from chain.apply import Applier
from chain.coins import tip_height
from chain.events import Classifier, Listener, dispatch
from chain.model import MempoolTx
from chain.sql import insert_ignore
from chain.txdata import tx_from_raw


def observe_transaction(session: Session, raw_hex: str, now: dt.datetime, *, listeners: tuple[Listener, ...] = (),
                        classifiers: tuple[Classifier, ...] = ()) -> int:
    """Index `raw_hex` (a serialized transaction accepted by the node) as unconfirmed.
    Returns the number of account rows it touched. Idempotent. Raises ValueError for
    bytes that are not a transaction."""
    try:
        tx = tx_from_raw(bytes.fromhex(raw_hex))
    except Exception:
        raise ValueError("not a serialized transaction") from None
    applier = Applier(session, now, classifiers=classifiers)
    applier.apply([tx], None)
    insert_ignore(session, MempoolTx, [dict(txid=tx.txid, relevant=bool(applier.events), seen_at=now)])
    dispatch(listeners, session, applier.events, tip_height(session) or 0, now)
    return len(applier.events)
