"""What the block follower's events mean for accounts and spends.

`Listener(notify)` is passed to chain.follower.Follower (config.bootstrap.chain_follower).
Inside the follower's transaction it moves spends — broadcast → confirmed → deep,
back to broadcast when a reorg takes the confirmation away (`spend_reorged`),
conflicted (`spend_conflicted`), replaced — and notifies the owner's device: `receive`
for a new incoming transaction, `spend_confirmed`, `spend_conflicted`, `spend_reorged`.
Idempotent: an event that finds the spend already in its state changes nothing.

`classify` tells the follower whether an unconfirmed spend of ours that lost its inputs
was replaced by our own bump (another spend of the account) or conflicted by a
transaction Custos did not sign.

`index_own_broadcast` is the signing gate's: it records our own transaction at once.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging

from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from chain import own
from chain.events import TxEvent
from chain.model import DEEP_CONFIRMATIONS, AccountTx
from chain.observe import observe_transaction
from cosigner.model import Account, Spend

log = logging.getLogger("custos.cosigner.chainevents")
_SPEND_STATE = {"mempool": "broadcast", "confirmed": "confirmed", "deep": "deep", "conflicted": "conflicted",
                "replaced": "replaced"}
_TRACKED = ("broadcast", "confirmed", "deep", "conflicted", "replaced")


def classify(session: Session, account_id: str, old_txid: str, new_txid: str) -> str | None:
    """replaced when both are spends of the account (an RBF bump), conflicted when a
    spend of ours lost to a transaction we did not sign; None when `old_txid` is not
    one of our spends (the follower's default rule applies)."""
    ours = select(Spend.id).where(Spend.account_id == account_id)
    if session.scalar(ours.where(Spend.txid == old_txid).limit(1)) is None:
        return None
    return "replaced" if session.scalar(ours.where(Spend.txid == new_txid).limit(1)) else "conflicted"


class Listener:
    def __init__(self, notify, *, refresh_confirmations: bool = True):
        """`refresh_confirmations`: after the events, recount the confirmations of every
        confirmed spend from the tip (what a block pass needs). False for a caller that
        applies only a transaction it just broadcast (the tip did not move, so no count
        changes): the signing gate, which would otherwise rewrite every confirmed spend of
        every account inside each cosign."""
        self.notify = notify                    # notify(session, device_id, kind, now)
        self.refresh_confirmations = refresh_confirmations

    def __call__(self, session: Session, events: list[TxEvent], tip_height: int, now: dt.datetime) -> None:
        owners: dict[str, str | None] = {}

        def owner(account_id: str) -> str | None:
            if account_id not in owners:
                owners[account_id] = session.scalar(select(Account.owner_device_id).where(Account.id == account_id))
            return owners[account_id]

        for ev in events:
            if ev.kind == "tx_seen" and ev.direction == "receive" and owner(ev.account_id):
                self.notify(session, owner(ev.account_id), "receive", now)
            self._spends(session, ev, tip_height, now, owner)
        if not self.refresh_confirmations:
            return
        height = (select(AccountTx.block_height).where(AccountTx.txid == Spend.txid,
                                                       AccountTx.account_id == Spend.account_id)
                  .limit(1).scalar_subquery())
        session.execute(update(Spend).where(Spend.state == "confirmed")
                        .values(confirmations=tip_height + 1 - func.coalesce(height, tip_height))
                        .execution_options(synchronize_session=False))

    def _spends(self, session: Session, ev: TxEvent, tip_height: int, now: dt.datetime, owner) -> None:
        for spend in session.scalars(select(Spend).where(Spend.account_id == ev.account_id, Spend.txid == ev.txid,
                                                         Spend.state.in_(_TRACKED))):
            new = _SPEND_STATE[ev.new_state]
            if new == "replaced" and not spend.replaced_by_id:
                new = "conflicted"  # lost its inputs to a spend that is not its own bump
            if spend.state == new:
                continue
            old = spend.state
            spend.state, spend.updated_at = new, now
            if ev.block_height is not None and new in ("confirmed", "deep"):
                spend.confirmations = max(1, tip_height - ev.block_height + 1)
                if new == "deep":
                    spend.confirmations = max(spend.confirmations, DEEP_CONFIRMATIONS)
            elif new in ("broadcast", "conflicted", "replaced"):
                spend.confirmations = 0
            device = owner(ev.account_id)
            if not device:
                continue
            if new == "confirmed" and old in ("broadcast", "replaced", "conflicted"):
                self.notify(session, device, "spend_confirmed", now)
            elif new == "conflicted":
                self.notify(session, device, "spend_conflicted", now)
            elif new == "broadcast" and old in ("confirmed", "deep"):
                self.notify(session, device, "spend_reorged", now)


def index_own_broadcast(session: Session, notify, raw: bytes, txid: str, now: dt.datetime, *,
                        account_id: str | None = None, intent=None) -> None:
    """The index records our own transaction at once (inputs spent, change ours; its coins
    stay reserved a while in case the node drops it before the follower sees it). With
    `account_id` and the gate's `intent` (cosigner.psbt.Intent: the account's coins it
    spends, amounts proved, and its outputs) a plain spend is written directly
    (chain.own.record_spend: the same rows, a third of the statements); anything else — a
    fee bump, a payment to another account, a transaction already indexed — goes through
    the general applier, in a savepoint. The transaction is already out: a failure here
    must not undo the spend's broadcast state, its decision and its place in the velocity
    ledger. It happens on PostgreSQL when the block follower's mempool pass indexes the
    same transaction at the same moment (a deadlock on the coin rows, or a row it wrote
    between record_spend's check and its write); the follower then indexes it, so only
    the savepoint is rolled back and the spend commits as sent. On SQLite nothing else
    writes while the gate holds the account lock (the database's one write lock), so
    record_spend declines before writing or not at all and runs without a savepoint."""
    try:
        if intent is not None and account_id is not None:
            try:
                with _direct_savepoint(session):
                    own.record_spend(session, account_id, txid,
                                     [(i.txid, i.vout, i.amount_sat) for i in intent.inputs],
                                     [(o.index, bytes.fromhex(o.script_hex), o.amount_sat) for o in intent.outputs],
                                     now)
                return
            except own.Declined:
                pass                 # the general applier below
        with session.begin_nested():
            observe_transaction(session, raw.hex(), now,
                                listeners=(Listener(notify, refresh_confirmations=False),),
                                classifiers=(classify,))
    except DBAPIError as err:
        log.warning("indexing our broadcast %s is left to the block follower (%s)", txid, type(err.orig).__name__)


def _direct_savepoint(session: Session):
    """A savepoint for chain.own.record_spend where another writer can meet it (PostgreSQL);
    none on SQLite, where the caller holds the one write lock (see index_own_broadcast)."""
    if session.get_bind().dialect.name == "sqlite":
        return contextlib.nullcontext()
    return session.begin_nested()
