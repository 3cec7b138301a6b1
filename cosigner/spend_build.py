"""Building spends from the account's own coins (the chain index): coin selection,
reservation, change address, PSBT. No wallet RPC: the node only gives fee estimates,
the mempool floor and the previous transactions (`getrawtransaction <txid> false
<blockhash>`, which works without -txindex).

`build(...)` runs in the caller's transaction and returns a `Built` (the PSBT text and
the coins it reserved); `cosigner.spends.record` inspects and records it. Raises
FundingError(insufficient_funds, details {shortfall_sat, available_sat, needed_sat}),
FundingError(amount_too_small) when subtract_fee_from would leave dust,
InvalidDescriptor (bad outputs or rates), ChainUnavailable (node down or behind the index).
"""
from __future__ import annotations

import datetime as dt
import random
import threading
from collections import OrderedDict
from dataclasses import dataclass

from embit.script import Script
from sqlalchemy import select
from sqlalchemy.orm import Session

from chain.errors import ChainRejected, ChainUnavailable
from chain.model import ScriptBranch, WatchedScript
from cosigner import build, coinselect, reservations
from cosigner.errors import FundingError, InvalidDescriptor
from cosigner.model import Spend
from cosigner.psbt import AccountView

RAW_TX_CACHE = 20_000             # previous transactions kept per process (immutable by txid)
CHANGE_CLAIMING_STATES = ("built", "delayed", "awaiting_approval", "broadcast")
_rng = random.SystemRandom()
_raw: "OrderedDict[str, bytes]" = OrderedDict()
_raw_lock = threading.Lock()


@dataclass(frozen=True)
class Built:
    psbt: str
    selection: coinselect.Selection
    outpoints: tuple[tuple[str, int], ...]
    change_index: int | None


def raw_transaction(node, txid: str, block_hash: str | None) -> bytes:
    """The serialized transaction `txid` (from `block_hash`, or the mempool when None).
    Cached per process. Raises ChainUnavailable when the node cannot give it."""
    with _raw_lock:
        hit = _raw.get(txid)
        if hit is not None:
            _raw.move_to_end(txid)
            return hit
    try:
        text = node.call("getrawtransaction", txid, False, block_hash) if block_hash else \
            node.call("getrawtransaction", txid, False)
    except ChainRejected as err:  # -5: reorged away or evicted; the index will catch up
        raise ChainUnavailable(f"the node does not have transaction {txid} (index ahead of node?)") from err
    raw = bytes.fromhex(text)
    with _raw_lock:
        _raw[txid] = raw
        while len(_raw) > RAW_TX_CACHE:
            _raw.popitem(last=False)
    return raw


def next_change(session: Session, account_id: str) -> tuple[int, bytes]:
    """The lowest change index that never received a payment and that no open or
    broadcast spend already uses, with its script. Locks the change branch row, so two
    builds never pick the same one; derives more through the index when none is left."""
    from chain import scripts
    session.scalar(select(ScriptBranch).where(ScriptBranch.account_id == account_id, ScriptBranch.branch == 1)
                   .with_for_update())
    claimed = set()
    for outputs in session.scalars(select(Spend.outputs).where(Spend.account_id == account_id,
                                                               Spend.state.in_(CHANGE_CLAIMING_STATES))):
        claimed.update(o["change_index"] for o in outputs if o.get("change"))
    rows = session.execute(select(WatchedScript.index, WatchedScript.script).where(
        WatchedScript.account_id == account_id, WatchedScript.branch == 1, WatchedScript.used.is_(False))
        .order_by(WatchedScript.index).limit(len(claimed) + 1)).all()
    for index, script in rows:
        if index not in claimed:
            return index, bytes(script)
    for _ in range(len(claimed) + 2):
        index, script = scripts.take_index(session, account_id, branch=1)
        used = session.scalar(select(WatchedScript.used).where(WatchedScript.script == script))
        if index not in claimed and not used:
            return index, script
    raise FundingError("no change address is available", code="change_unavailable")


def output_scripts(outputs: list[dict]) -> list[tuple[bytes, int]]:
    return [(Script.from_address(o["address"]).data, o["amount_sat"]) for o in outputs]


def build_spend(session: Session, node, view: AccountView, account_id: str, spend_id: str, *,
                outputs: list[tuple[bytes, int]], rate_kvb: int, subtract_fee_from: list[int],
                replaceable: bool, now: dt.datetime, use_all: bool = False,
                include_own_unconfirmed: bool = False, preselected: tuple = (),
                replacing: tuple[str, str] | None = None) -> Built:
    """Select, lock and build. The chosen coins are locked (PostgreSQL) or under the
    write lock (SQLite) when this returns; `spends.record` reserves them.
    `preselected` coins are always spent (an RBF replacement's original inputs;
    `replacing` = (txid, spend id) of the transaction they may be spent by / held for)."""
    reservations.write_lock(session, account_id)
    weight = build.coin_weight(view)
    target = coinselect.Target(tuple(a for _, a in outputs), tuple(len(s) for s, _ in outputs), rate_kvb,
                               change_input_weight=weight, subtract_fee_from=tuple(subtract_fee_from))
    pre = tuple(coinselect.Candidate(c.amount_sat, weight, c) for c in preselected)
    pre_ops = {(c.txid, c.vout) for c in preselected}
    spent_by, holder = replacing if replacing else (None, None)
    if pre_ops and reservations.lock(session, pre_ops, now, spent_by=spent_by, holder=holder) != pre_ops:
        raise reservations.CoinsTaken("a coin of the original spend is held by another spend (cancel it first)")
    # 1. optimistic: the best selection over every free coin, then lock exactly those
    free = [c for c in reservations.candidates(session, account_id, now,
                                               include_own_unconfirmed=include_own_unconfirmed)
            if (c.txid, c.vout) not in pre_ops]
    sel = _select(free, target, weight, use_all, pre)
    chosen = {(c.ref.txid, c.ref.vout) for c in sel.inputs} - pre_ops
    held_ops = reservations.lock(session, chosen, now)
    if held_ops != chosen and not use_all:
        # 2. contended (concurrent builds picked the same coins): lock more coins, largest
        # first, skipping rows others hold, until the coins we hold can pay
        sel = _select_under_contention(session, account_id, now, target, weight, pre, pre_ops,
                                       {c.ref for c in sel.inputs if (c.ref.txid, c.ref.vout) in held_ops},
                                       include_own_unconfirmed)
        chosen = {(c.ref.txid, c.ref.vout) for c in sel.inputs} - pre_ops
    elif held_ops != chosen:
        raise reservations.CoinsTaken("a coin to sweep is held by a spend being built right now; try again")
    chosen |= pre_ops
    change_index = None
    if sel.change:
        change_index, _ = next_change(session, account_id)
    coins = [c.ref for c in sel.inputs]
    _rng.shuffle(coins)
    made = [build.Coin(c.txid, c.vout, c.amount_sat, bytes(c.script), c.branch, c.index,
                       raw_transaction(node, c.txid, c.block_hash)) for c in coins]
    locktime = reservations.tip_height(session) or 0
    position = _rng.randint(0, len(outputs)) if sel.change else None
    try:
        psbt = build.build_psbt(view, made, [(s, a) for (s, _), a in zip(outputs, sel.amounts)],
                                change=(change_index, sel.change) if sel.change else None,
                                change_position=position, locktime=locktime, replaceable=replaceable)
    except build.BuildError as err:  # the node's transaction contradicts the index (reorg in progress)
        raise ChainUnavailable(str(err)) from None
    return Built(psbt.to_string(), sel, tuple(sorted(chosen)), change_index)


def _select_under_contention(session, account_id, now, target, weight, pre, pre_ops, held: set,
                             include_own_unconfirmed: bool) -> coinselect.Selection:
    """Grow the set of coins this transaction holds (FOR UPDATE SKIP LOCKED) until a
    selection over them alone pays `target`; InsufficientFunds (as FundingError) when
    every coin not held by someone else is ours and still does not."""
    while True:
        try:
            return _select(sorted(held, key=lambda c: (c.txid, c.vout)), target, weight, False, pre)
        except FundingError:
            # one coin at a time: a build never holds a coin it does not need, so a
            # concurrent build is never refused for lack of a coin nobody uses
            more = reservations.lock_next(session, account_id, now,
                                          exclude={(c.txid, c.vout) for c in held} | pre_ops, limit=1,
                                          include_own_unconfirmed=include_own_unconfirmed)
            if not more:
                raise
            held.update(more)


def _select(free, target: coinselect.Target, weight: int, use_all: bool, pre=()) -> coinselect.Selection:
    cands = [coinselect.Candidate(c.amount_sat, weight, c) for c in free]
    try:
        return coinselect.select(cands, target, use_all=use_all, preselected=pre)
    except coinselect.InsufficientFunds as err:
        raise FundingError(f"not enough confirmed funds: {err.shortfall} sat short",
                           details={"shortfall_sat": err.shortfall, "available_sat": err.available,
                                    "needed_sat": err.needed}) from None
    except coinselect.AmountTooSmall as err:
        raise FundingError(f"output {err.index} is too small to pay its share of the fee",
                           code="amount_too_small", details={"output": err.index, "amount_sat": err.amount}) \
            from None


def validate_request(outputs: list[dict], subtract_fee_from: list[int]) -> None:
    if len(set(subtract_fee_from)) != len(subtract_fee_from) or \
            any(not 0 <= i < len(outputs) for i in subtract_fee_from):
        raise InvalidDescriptor("subtract_fee_from names an output twice or one that does not exist",
                                code="invalid_outputs")
