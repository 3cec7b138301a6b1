"""Mempool and broadcast RPCs: getrawmempool, getmempoolentry, getmempoolinfo,
sendrawtransaction, testmempoolaccept.

Each handler is `fn(ctx, *params)`; the server holds the node lock while it runs.
Amounts leave as Decimal BTC; failures are RPCFailure with Core's codes and messages.
"""
from __future__ import annotations

from devnet.encoding import btc, btc_kvb, hash_param
from devnet.errors import RPCFailure, TxRejected, INVALID_ADDRESS_OR_KEY, INVALID_PARAMETER
from devnet.params import as_bool, as_list, as_number
from devnet.txutil import parse_tx_hex
from devnet import validation as v


def _entry_json(node, e) -> dict:
    pool = node.mempool
    desc, anc = pool.descendants(e.ti.txid), pool.ancestors(e.ti.txid)
    dfee = e.fee + sum(pool.entries[t].fee for t in desc)
    afee = e.fee + sum(pool.entries[t].fee for t in anc)
    return {"vsize": e.ti.vsize, "weight": e.ti.weight, "time": e.time, "height": e.height,
            "descendantcount": len(desc) + 1,
            "descendantsize": e.ti.vsize + sum(pool.entries[t].ti.vsize for t in desc),
            "ancestorcount": len(anc) + 1,
            "ancestorsize": e.ti.vsize + sum(pool.entries[t].ti.vsize for t in anc),
            "wtxid": e.ti.wtxid,
            "fees": {"base": btc(e.fee), "modified": btc(e.fee), "ancestor": btc(afee), "descendant": btc(dfee)},
            "depends": sorted(e.parents), "spentby": sorted(e.children),
            "bip125-replaceable": True, "unbroadcast": False}


def getrawmempool(ctx, verbose=False, mempool_sequence=False):
    node = ctx.node
    if as_bool(verbose, False):
        if as_bool(mempool_sequence, False):
            raise RPCFailure(INVALID_PARAMETER, "Verbose results cannot contain mempool sequence values.")
        return {t: _entry_json(node, e) for t, e in node.mempool.entries.items()}
    txids = list(node.mempool.entries)
    if as_bool(mempool_sequence, False):
        return {"txids": txids, "mempool_sequence": node.mempool.sequence}
    return txids


def getmempoolentry(ctx, txid):
    e = ctx.node.mempool.entries.get(hash_param(txid, "txid"))
    if e is None:
        raise RPCFailure(INVALID_ADDRESS_OR_KEY, "Transaction not in mempool")
    return _entry_json(ctx.node, e)


def getmempoolinfo(ctx):
    entries = ctx.node.mempool.entries.values()
    size = sum(e.ti.vsize for e in entries)
    return {"loaded": True, "size": len(entries), "bytes": size, "usage": size * 4,
            "total_fee": btc(sum(e.fee for e in entries)), "maxmempool": 300_000_000,
            "mempoolminfee": btc_kvb(v.MIN_RELAY_FEERATE), "minrelaytxfee": btc_kvb(v.MIN_RELAY_FEERATE),
            "incrementalrelayfee": btc_kvb(1), "unbroadcastcount": 0, "fullrbf": True}


def _max_feerate(value) -> int | None:
    """maxfeerate in BTC/kvB → sat/vB (0 = no limit); default 0.10 BTC/kvB."""
    if value is None:
        return 10_000
    rate = as_number(value)
    if rate < 0:
        raise RPCFailure(-3, "Amount out of range")
    return int(rate * 100_000) or None


MAX_FEE_EXCEEDED = "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)"


def sendrawtransaction(ctx, hexstring, maxfeerate=None, maxburnamount=None):
    ti = parse_tx_hex(hexstring)
    try:
        acc = ctx.node.submit(ti, max_feerate=_max_feerate(maxfeerate))
    except TxRejected as exc:
        if exc.reason == "max-fee-exceeded":  # Core: TransactionError::MAX_FEE_EXCEEDED, no reason prefix
            raise RPCFailure(-25, MAX_FEE_EXCEEDED) from None
        raise
    return acc.entry.ti.txid


def testmempoolaccept(ctx, rawtxs, maxfeerate=None):
    rawtxs = as_list(rawtxs)
    if not 1 <= len(rawtxs) <= 25:
        raise RPCFailure(INVALID_PARAMETER, "Array must contain between 1 and 25 transactions.")
    out = []
    for raw in rawtxs:
        ti = parse_tx_hex(raw)
        res = {"txid": ti.txid, "wtxid": ti.wtxid}
        try:
            acc = ctx.node.test_accept(ti, _max_feerate(maxfeerate))
            res.update({"allowed": True, "vsize": ti.vsize, "fees": {
                "base": btc(acc.entry.fee),
                "effective-feerate": btc_kvb(acc.entry.fee / ti.vsize),
                "effective-includes": [ti.wtxid]}})
        except TxRejected as exc:
            reason = {"bad-txns-inputs-missingorspent": "missing-inputs"}.get(exc.reason, exc.reason)
            res.update({"allowed": False, "reject-reason": reason})
        out.append(res)
    return out


METHODS = {f.__name__: f for f in (
    getrawmempool, getmempoolentry, getmempoolinfo, sendrawtransaction, testmempoolaccept)}
