"""Account history (from the chain index) and fee estimates (from bitcoind), shaped for
the API. Integer satoshis everywhere; Decimal BTC stays inside chain/."""
from __future__ import annotations

import threading
import time

from sqlalchemy.orm import Session

from chain import coins as chain_coins
from chain.rpc import btc_to_sat
from cosigner.context import CosignerContext

FEE_TARGETS = (1, 3, 6, 12, 24, 144)
FEE_CACHE_SECONDS = 30.0
_fee_cache: dict[str, tuple[float, dict]] = {}
_fee_lock = threading.Lock()


def transactions(session: Session, account, *, cursor: int, limit: int) -> dict:
    """One page of the account's history from the chain index, newest first (unconfirmed,
    then by block height and position). `cursor` counts entries already seen;
    `next_cursor` is None on the last page. Each entry has `block_height` (None while
    unconfirmed) and a status: mempool, confirmed, deep, conflicted or replaced."""
    page, more = chain_coins.history(session, account.id, offset=cursor, limit=limit)
    return {"transactions": page, "next_cursor": str(cursor + len(page)) if more else None}


def fee_estimates(ctx: CosignerContext) -> dict:
    """sat/vB for each target in FEE_TARGETS (None where bitcoind has no estimate),
    cached FEE_CACHE_SECONDS per node."""
    key = ctx.node.endpoint
    with _fee_lock:
        hit = _fee_cache.get(key)
        if hit and time.monotonic() - hit[0] < FEE_CACHE_SECONDS:
            return hit[1]
    estimates, errors = {}, {}
    for target in FEE_TARGETS:
        r = ctx.node.call("estimatesmartfee", target)
        if "feerate" in r:
            estimates[str(target)] = round(btc_to_sat_per_vb(r["feerate"]), 2)
        else:
            estimates[str(target)] = None
            errors[str(target)] = "; ".join(r.get("errors", ["no estimate"]))
    result = {"estimates": estimates, "errors": errors}
    with _fee_lock:
        _fee_cache[key] = (time.monotonic(), result)
    return result


def btc_to_sat_per_vb(btc_per_kvb) -> float:
    return btc_to_sat(btc_per_kvb) / 1000
