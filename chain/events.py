"""What the follower tells the rest of Custos, inside the transaction that changed it.

`TxEvent` describes one account transaction appearing (`tx_seen`) or changing state
(`tx_state`: mempool → confirmed → deep, back to mempool on a reorg, conflicted,
replaced). Listeners are passed to the follower (`Follower(listeners=[...])`) and are
called once per block (also one with no events of ours) / mempool batch with events as
`fn(session, events, tip_height, now)`; they
must not call bitcoind and must be idempotent (a retried transaction calls them again).

`Classifier`: when an unconfirmed transaction loses its inputs to another one, the
follower asks `fn(session, account_id, old_txid, new_txid) -> "replaced" | "conflicted"
| None`; the first non-None answer wins, else the default rule (replaced when the new
transaction spends the same account's coins, conflicted otherwise).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable, Iterable

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class TxEvent:
    kind: str                      # tx_seen | tx_state
    account_id: str
    txid: str
    old_state: str | None
    new_state: str
    direction: str                 # receive | send (the account funded it)
    block_height: int | None = None
    replaced_by: str | None = None


Listener = Callable[[Session, list[TxEvent], int, dt.datetime], None]
Classifier = Callable[[Session, str, str, str], str | None]


def dispatch(listeners: Iterable[Listener], session: Session, events: list[TxEvent], tip_height: int,
             now: dt.datetime, *, tip_moved: bool = False) -> None:
    """Call the listeners with `events`. A pass with no events calls them only when the
    tip moved (a block applied or undone: confirmation counts change with it)."""
    if not events and not tip_moved:
        return
    for fn in listeners:
        fn(session, events, tip_height, now)
