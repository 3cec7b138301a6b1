"""Account history and fee estimates, read from bitcoind and shaped for the API.
Integer satoshis everywhere; Decimal BTC stays inside chain/."""
from __future__ import annotations

import threading
import time

from chain import wallets
from chain.rpc import btc_to_sat
from cosigner.context import CosignerContext
from cosigner.watcher import status_of

FEE_TARGETS = (1, 3, 6, 12, 24, 144)
FEE_CACHE_SECONDS = 30.0
_fee_cache: dict[str, tuple[float, dict]] = {}
_fee_lock = threading.Lock()


def transactions(ctx: CosignerContext, account, *, cursor: int, limit: int) -> dict:
    """One page, newest first. `cursor` counts transactions already seen (an offset into
    bitcoind's list); `next_cursor` is None on the last page."""
    wallet = wallets.wallet_for(ctx.node, ctx.wallet_prefix, account.id)
    entries = wallet.call("listtransactions", "*", limit * 4, cursor, True)
    grouped: dict[str, dict] = {}
    order: list[str] = []
    for e in entries:
        txid = e["txid"]
        if txid not in grouped:
            grouped[txid] = {"txid": txid, "send": 0, "receive": 0, "fee_sat": None, "entry": e}
            order.append(txid)
        g = grouped[txid]
        amount = btc_to_sat(abs(e["amount"]))
        if e["category"] == "send":
            g["send"] += amount
            if "fee" in e:
                g["fee_sat"] = btc_to_sat(abs(e["fee"]))
        elif e["category"] in ("receive", "generate", "immature"):
            g["receive"] += amount
    page = []
    for txid in reversed(order):
        g = grouped[txid]
        e = g["entry"]
        status = status_of(e)
        if e.get("replaced_by_txid"):
            status = "replaced"
        outgoing = g["send"] > 0
        page.append({"txid": txid, "direction": "send" if outgoing else "receive",
                     "amount_sat": g["send"] if outgoing else g["receive"],
                     "fee_sat": g["fee_sat"] if outgoing else None,
                     "confirmations": max(0, int(e.get("confirmations", 0))), "status": status,
                     "replaced_by": e.get("replaced_by_txid"), "time": int(e.get("time", 0))})
    page = page[:limit]
    more = len(entries) >= limit * 4 or len(grouped) > limit
    return {"transactions": page, "next_cursor": str(cursor + len(entries)) if more else None}


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
