"""Wallet transaction history RPCs: listtransactions, listsinceblock, gettransaction.

Entry shapes follow Core's ListTransactions: "send" entries (negative amounts, with fee)
for outputs of our own spends that do not return to an internal (change) descriptor,
"receive"/"generate"/"immature" entries for outputs paying us.
"""
from __future__ import annotations

from devnet.chain import COINBASE_MATURITY
from devnet.encoding import address_of, btc
from devnet.errors import RPCFailure, INVALID_ADDRESS_OR_KEY, INVALID_PARAMETER
from devnet.params import as_bool, as_int, as_str
from devnet.txutil import tx_json
from devnet.rpc_wallet import parent_desc


def _replaceable(node, w, wtx, conf) -> str:
    if conf != 0:
        return "no"
    if wtx.ti.txid not in node.mempool:
        return "unknown"
    return "yes" if any(v.sequence < 0xFFFFFFFE for v in wtx.ti.tx.vin) else "no"


def _conflicts(w, wtx) -> list[str]:
    ops = {(v.txid.hex(), v.vout) for v in wtx.ti.tx.vin}
    return sorted(t for t, other in w.txs.items() if t != wtx.ti.txid and
                  any((v.txid.hex(), v.vout) in ops for v in other.ti.tx.vin))


def common_fields(node, w, wtx) -> dict:
    tip = node.chain.height
    conf = w.confirmations(wtx, tip)
    out = {"confirmations": conf}
    if wtx.coinbase:
        out["generated"] = True
    if conf == 0:
        out["trusted"] = wtx.from_me and wtx.ti.txid in node.mempool
    if wtx.height is not None:
        out.update({"blockhash": wtx.block_hash, "blockheight": wtx.height,
                    "blockindex": wtx.block_pos, "blocktime": wtx.block_time})
    out.update({"txid": wtx.ti.txid, "wtxid": wtx.ti.wtxid, "walletconflicts": _conflicts(w, wtx)})
    if wtx.replaced_by:
        out["replaced_by_txid"] = wtx.replaced_by
    out.update({"time": wtx.time_received if wtx.height is None else min(wtx.time_received, wtx.block_time),
                "timereceived": wtx.time_received, "bip125-replaceable": _replaceable(node, w, wtx, conf)})
    return out


def fee_of(w, wtx) -> int | None:
    if not wtx.from_me:
        return None
    return wtx.debit - sum(o.value for o in wtx.ti.tx.vout)


def entries(node, w, wtx, include_change: bool = False) -> list[dict]:
    """Core's per-output entries for one wallet transaction."""
    common = common_fields(node, w, wtx)
    tip = node.chain.height
    out = []
    fee = fee_of(w, wtx)
    if wtx.debit > 0:
        for n, o in enumerate(wtx.ti.tx.vout):
            spk = o.script_pubkey.data
            hit = w.spk_map.get(spk)
            if hit and hit[0].rec["internal"] and not include_change:
                continue
            e = {"address": address_of(spk), "category": "send", "amount": -btc(o.value)}
            if spk in w.labels:
                e["label"] = w.labels[spk]
            e["vout"] = n
            if fee is not None:
                e["fee"] = -btc(fee)
            e.update(common)
            e["abandoned"] = wtx.abandoned
            out.append({k: v for k, v in e.items() if v is not None or k != "address"})
    for n, o in enumerate(wtx.ti.tx.vout):
        spk = o.script_pubkey.data
        hit = w.spk_map.get(spk)
        if not hit or (hit[0].rec["internal"] and not include_change and wtx.debit > 0):
            continue
        if wtx.coinbase:
            conf = common["confirmations"]
            cat = "orphan" if conf < 1 else "immature" if tip - wtx.height < COINBASE_MATURITY else "generate"
        else:
            cat = "receive"
        e = {"address": address_of(spk), "parent_descs": [parent_desc(hit[0])],
             "category": cat, "amount": btc(o.value)}
        if spk in w.labels or not hit[0].rec["internal"]:
            e["label"] = w.labels.get(spk, "")
        e["vout"] = n
        if wtx.abandoned:
            e["abandoned"] = True
        e.update(common)
        out.append(e)
    return out


def _ordered(w):
    return sorted(w.txs.values(), key=lambda t: (t.height if t.height is not None else 1 << 40,
                                                 t.block_pos or 0, t.time_received))


def listtransactions(ctx, label=None, count=10, skip=0, include_watchonly=True):
    w = ctx.wallet()
    count = as_int(count, default=10) if count is not None else 10
    skip = as_int(skip, default=0) if skip is not None else 0
    if count < 0:
        raise RPCFailure(INVALID_PARAMETER, "Negative count")
    if skip < 0:
        raise RPCFailure(INVALID_PARAMETER, "Negative from")
    label = None if label in (None, "*") else as_str(label)
    items = []
    for wtx in _ordered(w):
        for e in entries(ctx.node, w, wtx):
            if label is None or e.get("label") == label:
                items.append(e)
    end = len(items) - skip
    return items[max(0, end - count):max(0, end)]


def listsinceblock(ctx, blockhash=None, target_confirmations=1, include_watchonly=True,
                   include_removed=True, include_change=False, label=None):
    node, w = ctx.node, ctx.wallet()
    chain = node.chain
    since = -1
    if blockhash not in (None, ""):
        bi = chain.by_hash.get(as_str(blockhash).lower())
        if bi is None:
            raise RPCFailure(INVALID_ADDRESS_OR_KEY, "Block not found")
        since = bi.height
    target = as_int(target_confirmations, default=1) if target_confirmations is not None else 1
    if target < 1:
        raise RPCFailure(INVALID_PARAMETER, "Invalid parameter")
    want_change = as_bool(include_change, False)
    txs = []
    for wtx in _ordered(w):
        depth_height = wtx.height if wtx.height is not None else None
        if depth_height is None or depth_height > since:
            for e in entries(node, w, wtx, want_change):
                if label is None or e.get("label") == label:
                    txs.append(e)
    last = chain.blocks[max(0, chain.height + 1 - target)].hash
    out = {"transactions": txs}
    if as_bool(include_removed, True):
        out["removed"] = []
    out["lastblock"] = last
    return out


def gettransaction(ctx, txid, include_watchonly=True, verbose=False):
    node, w = ctx.node, ctx.wallet()
    wtx = w.txs.get(as_str(txid).lower())
    if wtx is None:
        raise RPCFailure(INVALID_ADDRESS_OR_KEY, "Invalid or non-wallet transaction id")
    credit = sum(o.value for o in wtx.ti.tx.vout if o.script_pubkey.data in w.spk_map)
    fee = fee_of(w, wtx)
    net = credit - wtx.debit + (fee or 0) if wtx.debit else credit
    out = {"amount": btc(net)}
    if fee is not None:
        out["fee"] = -btc(fee)
    out.update(common_fields(node, w, wtx))
    out["details"] = [{k: v for k, v in e.items() if k in (
        "address", "category", "amount", "label", "vout", "fee", "abandoned", "parent_descs")}
        for e in entries(node, w, wtx)]
    out["hex"] = wtx.ti.raw.hex()
    if as_bool(verbose, False):
        out["decoded"] = tx_json(wtx.ti, include_hex=False)
    return out


def signmessage(ctx, address, message):
    """Core signs messages only with a legacy P2PKH key: -5 for an invalid address, -3
    "Address does not refer to key" for any other kind (segwit, multisig, taproot).
    devnet's wallets hold no legacy keys, so a P2PKH address gets Core's answer for a
    key the wallet lacks (-4 "Private key not available")."""
    from devnet.encoding import script_type, spk_of_address
    ctx.wallet()
    as_str(message)
    try:
        spk = spk_of_address(as_str(address))
    except RPCFailure:
        raise RPCFailure(INVALID_ADDRESS_OR_KEY, "Invalid address") from None
    if script_type(spk) != "pubkeyhash":
        raise RPCFailure(-3, "Address does not refer to key")
    raise RPCFailure(-4, "Private key not available")


METHODS = {f.__name__: f for f in (listtransactions, listsinceblock, gettransaction, signmessage)}
