"""Wallet RPCs: wallet lifecycle, descriptors, addresses, balances, UTXOs, rescans.

Descriptor wallets only. Amounts leave as Decimal BTC. Errors use Core's codes: -4
wallet errors, -5 invalid address/descriptor, -8 invalid parameters, -18/-35/-36 for
wallet lifecycle.
"""
from __future__ import annotations

from devnet import descriptors as dsc
from devnet.encoding import btc, spk_of_address, script_type
from devnet.errors import RPCFailure, INVALID_PARAMETER, WALLET_ERROR, TYPE_ERROR
from devnet.params import as_bool, as_int, as_list, as_obj, as_str
from devnet.wallet import Wallet, descriptor_record, new_hd_descriptors

OUTPUT_TYPES = ("legacy", "p2sh-segwit", "bech32", "bech32m")


def _name(value) -> str:
    name = as_str(value)
    return name


def createwallet(ctx, wallet_name, disable_private_keys=False, blank=False, passphrase=None,
                 avoid_reuse=False, descriptors=True, load_on_startup=None, external_signer=False):
    node = ctx.node
    name = _name(wallet_name)
    if not as_bool(descriptors, True):
        raise RPCFailure(WALLET_ERROR, "descriptors argument must be set to \"true\"; it is no longer "
                         "possible to create a legacy wallet.")
    if name in node.wallets or node.store.wallet_meta(name) is not None:
        raise RPCFailure(WALLET_ERROR, f"Wallet file verification failed. Failed to create database path "
                         f"'{node.netdir / 'wallets' / name}'. Database already exists.")
    if passphrase:
        raise RPCFailure(WALLET_ERROR, "devnet does not support encrypted wallets")
    no_keys, is_blank = as_bool(disable_private_keys, False), as_bool(blank, False)
    meta = {"disable_private_keys": no_keys, "blank": is_blank, "birth": node.now()}
    recs = []
    if not no_keys and not is_blank:
        meta["root"], recs = new_hd_descriptors(node.now())
        for r in recs:
            r["range"] = [0, node.keypool - 1]
    node.store.create_wallet(name, meta, bool(load_on_startup))
    if recs:
        node.store.put_descriptors(name, recs)
    node.load_wallet(name)
    return {"name": name}


def loadwallet(ctx, filename, load_on_startup=None):
    w = ctx.node.load_wallet(_name(filename))
    if load_on_startup is not None:
        ctx.node.store.set_load_on_startup(w.name, as_bool(load_on_startup))
    return {"name": w.name}


def unloadwallet(ctx, wallet_name=None, load_on_startup=None):
    if wallet_name is not None and ctx.wallet_name is not None and wallet_name != ctx.wallet_name:
        raise RPCFailure(INVALID_PARAMETER, "RPC endpoint wallet and wallet_name parameter specify different wallets")
    name = _name(wallet_name) if wallet_name is not None else ctx.wallet().name
    ctx.node.wallet(name)
    del ctx.node.wallets[name]
    if load_on_startup is not None:
        ctx.node.store.set_load_on_startup(name, as_bool(load_on_startup))
    return {}


def listwallets(ctx):
    return sorted(ctx.node.wallets)


def listwalletdir(ctx):
    return {"wallets": [{"name": n, "warnings": []} for n in ctx.node.store.wallet_names()]}


def getwalletinfo(ctx):
    w = ctx.wallet()
    tip = ctx.node.chain.height
    bal = w.balances(tip)
    return {"walletname": w.name, "walletversion": 169900, "format": "sqlite",
            "balance": btc(bal["trusted"]), "unconfirmed_balance": btc(bal["untrusted_pending"]),
            "immature_balance": btc(bal["immature"]), "txcount": len(w.txs),
            "keypoolsize": 0, "paytxfee": btc(0), "private_keys_enabled": w.private_keys_enabled,
            "avoid_reuse": False, "scanning": False, "descriptors": True, "external_signer": False,
            "blank": w.meta.get("blank", False), "birthtime": w.meta.get("birth"),
            "lastprocessedblock": {"hash": ctx.node.chain.tip.hash, "height": tip}}


# ---- descriptors -----------------------------------------------------------------------

def _timestamp(req: dict, now: int) -> int:
    if "timestamp" not in req:
        raise RPCFailure(TYPE_ERROR, "Missing required timestamp field for key")
    ts = req["timestamp"]
    if ts == "now":
        return now
    if isinstance(ts, int) and not isinstance(ts, bool):
        return ts
    raise RPCFailure(TYPE_ERROR, f"Expected number or \"now\" timestamp value for key. got type {type(ts).__name__}")


def _import_one(w: Wallet, req: dict, timestamp: int, keypool: int) -> tuple[dict, list[str]]:
    warnings = []
    desc = dsc.parse(req.get("desc"), require_checksum=True)
    body = dsc.split_checksum(req["desc"], True)
    active = as_bool(req.get("active"), False)
    internal = as_bool(req.get("internal"), False)
    label = req.get("label")
    ranged = dsc.is_range(desc)
    if label is not None and ranged:
        raise RPCFailure(INVALID_PARAMETER, "Ranged descriptors should not have a label")
    if label is not None and internal:
        raise RPCFailure(INVALID_PARAMETER, "Internal addresses should not have a label")
    if active and not ranged:
        raise RPCFailure(INVALID_PARAMETER, "Active descriptors must be ranged")
    if not ranged and "range" in req:
        raise RPCFailure(INVALID_PARAMETER, "Range should not be specified for an un-ranged descriptor")
    rng, next_index = None, 0
    if ranged:
        if "range" in req:
            rng = list(dsc.parse_range(req["range"], True))
        else:
            warnings.append("Range not given, using default keypool range")
            rng = [0, keypool - 1]
        next_index = rng[0]
        if "next_index" in req:
            next_index = as_int(req["next_index"])
            if not rng[0] <= next_index <= rng[1]:
                raise RPCFailure(INVALID_PARAMETER, "next_index is out of range")
    has_priv = dsc.has_private(desc)
    if has_priv and not w.private_keys_enabled:
        raise RPCFailure(WALLET_ERROR, "Cannot import private keys to a wallet with private keys disabled")
    if not has_priv and w.private_keys_enabled:
        raise RPCFailure(WALLET_ERROR, "Cannot import descriptor without private keys to a wallet with "
                         "private keys enabled")
    rec = descriptor_record(body, active=active, internal=internal, rng=rng, next_index=next_index,
                            timestamp=timestamp, label=label)
    old = next((d.rec for d in w.descs if d.rec["id"] == rec["id"]), None)
    if old is not None and ranged:
        rec["range"] = [min(old["range"][0], rng[0]), max(old["range"][1], rng[1])]
        rec["next_index"] = max(old["next_index"], next_index)
        rec["timestamp"] = min(old["timestamp"], timestamp)
    if active and ranged:
        rec["range"][1] = max(rec["range"][1], rec["next_index"] + keypool - 1)
    return rec, warnings


def importdescriptors(ctx, requests):
    node, w = ctx.node, ctx.wallet()
    reqs = as_list(requests)
    now = node.now()
    stamps = [_timestamp(as_obj(r), now) for r in reqs]
    results, lowest = [], None
    for req, ts in zip(reqs, stamps):
        try:
            rec, warnings = _import_one(w, req, ts, node.keypool)
            w.add_descriptor(rec)
            lowest = ts if lowest is None else min(lowest, ts)
            res = {"success": True}
            if warnings:
                res["warnings"] = warnings
        except RPCFailure as exc:
            res = {"success": False, "error": {"code": exc.code, "message": exc.message}}
        results.append(res)
    if lowest is not None:
        node.rescan(w, node.height_for_time(lowest))
    return results


def listdescriptors(ctx, private=False):
    w = ctx.wallet()
    show_private = as_bool(private, False)
    if show_private and not w.private_keys_enabled:
        raise RPCFailure(WALLET_ERROR, "Can't get descriptor string.")
    out = []
    for wd in sorted(w.descs, key=lambda d: d.rec["id"]):
        r = wd.rec
        text = r["desc"] if show_private else dsc.public_string(wd.desc)
        e = {"desc": dsc.add_checksum(text), "timestamp": r["timestamp"], "active": r["active"]}
        if r["active"]:
            e["internal"] = r["internal"]
        if wd.ranged:
            e["range"] = list(r["range"])
            e["next"] = r["next_index"]
            e["next_index"] = r["next_index"]
        out.append(e)
    return {"wallet_name": w.name, "descriptors": out}


# ---- addresses -------------------------------------------------------------------------

def _new_address(ctx, internal: bool, address_type):
    w = ctx.wallet()
    if address_type is not None and as_str(address_type) not in OUTPUT_TYPES:
        raise RPCFailure(-5, f"Unknown address type '{address_type}'")
    got = w.next_address(internal, address_type or ("bech32" if w.active(internal, "bech32") else None))
    if got is None:
        raise RPCFailure(-12, "Error: This wallet has no available keys")
    return got[0]


def getnewaddress(ctx, label=None, address_type=None):
    if label is not None and as_str(label) == "*":
        raise RPCFailure(-11, "Invalid label name")
    return _new_address(ctx, False, address_type)


def getrawchangeaddress(ctx, address_type=None):
    return _new_address(ctx, True, address_type)


def parent_desc(wd) -> str:
    if "parent" not in wd.cache:
        wd.cache["parent"] = dsc.add_checksum(dsc.public_string(wd.desc))
    return wd.cache["parent"]


def inferred_desc(wd, index: int) -> str:
    """The derived descriptor with hex keys and full origins, like Core's InferDescriptor
    (memoized per index)."""
    key = ("inferred", index)
    if key not in wd.cache:
        wd.cache[key] = _inferred_desc(wd, index)
    return wd.cache[key]


def _inferred_desc(wd, index: int) -> str:
    d = wd.at(index)
    text = dsc.public_string(d)
    for k in d.keys:
        pub = k.get_public_key()
        hexkey = pub.xonly().hex() if d.is_taproot else pub.sec().hex()
        origin = f"[{k.origin}]" if k.origin is not None else ""
        text = text.replace(str(k.to_public() if hasattr(k, "to_public") else k), origin + hexkey, 1)
    return dsc.add_checksum(text)


def getaddressinfo(ctx, address):
    w = ctx.wallet()
    try:
        spk = spk_of_address(address)
    except RPCFailure:
        raise RPCFailure(-5, "Invalid address") from None
    kind = script_type(spk)
    out = {"address": address, "scriptPubKey": spk.hex()}
    hit = w.spk_map.get(spk)
    out["ismine"] = hit is not None
    out["solvable"] = hit is not None
    if hit:
        wd, idx = hit
        out["desc"] = inferred_desc(wd, idx)
        out["parent_desc"] = parent_desc(wd)
    out["iswatchonly"] = False
    out["isscript"] = kind in ("scripthash", "witness_v0_scripthash")
    out["iswitness"] = kind.startswith("witness")
    if out["iswitness"]:
        out["witness_version"] = 0 if spk[0] == 0 else spk[0] - 0x50
        out["witness_program"] = spk[2:].hex()
    if hit:
        wd, idx = hit
        d = wd.at(idx)
        if kind == "witness_v0_scripthash":
            out["script"] = "multisig" if d.is_basic_multisig else "nonstandard"
            out["hex"] = d.witness_script().data.hex()
        if len(d.keys) == 1:
            k = d.keys[0]
            out["pubkey"] = k.get_public_key().sec().hex()
            if k.origin is not None:
                out["hdkeypath"] = "m" + str(k.origin)[8:]
                out["hdmasterfingerprint"] = k.origin.fingerprint.hex()
        out["ischange"] = wd.rec["internal"]
        out["timestamp"] = wd.rec["timestamp"]
    else:
        out["ischange"] = False
    out["labels"] = [w.labels[spk]] if spk in w.labels else ([""] if hit and not out["ischange"] else [])
    return out


# ---- balances and coins ----------------------------------------------------------------

def getbalances(ctx):
    w = ctx.wallet()
    b = w.balances(ctx.node.chain.height)
    return {"mine": {k: btc(b[k]) for k in ("trusted", "untrusted_pending", "immature")},
            "lastprocessedblock": {"hash": ctx.node.chain.tip.hash, "height": ctx.node.chain.height}}


def getbalance(ctx, dummy=None, minconf=0, include_watchonly=True, avoid_reuse=True):
    if dummy is not None and dummy != "*":
        raise RPCFailure(-32, "dummy first argument must be excluded or set to \"*\".")
    return btc(ctx.wallet().balances(ctx.node.chain.height)["trusted"])


def listunspent(ctx, minconf=1, maxconf=9999999, addresses=None, include_unsafe=True, query_options=None):
    w, tip = ctx.wallet(), ctx.node.chain.height
    lo, hi = as_int(minconf, default=1) if minconf is not None else 1, \
        as_int(maxconf, default=9999999) if maxconf is not None else 9999999
    wanted = None
    if addresses:
        wanted = set()
        for a in as_list(addresses):
            try:
                wanted.add(spk_of_address(a))
            except RPCFailure:
                raise RPCFailure(-5, f"Invalid Bitcoin address: {a}") from None
    unsafe_ok = as_bool(include_unsafe, True)
    out = []
    for o, wtx in w.unspent():
        conf = w.confirmations(wtx, tip)
        if not lo <= conf <= hi or (wanted is not None and o.spk not in wanted):
            continue
        if wtx.coinbase and tip - wtx.height < 100:
            continue
        safe = conf > 0 or wtx.from_me
        if not safe and not unsafe_ok:
            continue
        e = {"txid": o.txid, "vout": o.n, "address": o.wd.address(o.index)}
        if o.spk in w.labels:
            e["label"] = w.labels[o.spk]
        e["scriptPubKey"] = o.spk.hex()
        e["amount"] = btc(o.value)
        e["confirmations"] = conf
        if o.wd.desc.scriptpubkey_type() == "p2wsh":
            e["witnessScript"] = o.wd.at(o.index).witness_script().data.hex()
        e.update({"spendable": True, "solvable": True, "desc": inferred_desc(o.wd, o.index),
                  "parent_descs": [parent_desc(o.wd)], "safe": safe})
        out.append(e)
    return out


def rescanblockchain(ctx, start_height=0, stop_height=None):
    node, w = ctx.node, ctx.wallet()
    start = as_int(start_height, default=0) if start_height is not None else 0
    stop = as_int(stop_height) if stop_height is not None else node.chain.height
    if start < 0 or start > node.chain.height or stop < start or stop > node.chain.height:
        raise RPCFailure(INVALID_PARAMETER, "Invalid start_height" if start < 0 or start > node.chain.height
                         else "Invalid stop_height")
    a, b = node.rescan(w, start, stop)
    return {"start_height": a, "stop_height": b}


def abandontransaction(ctx, txid):
    w, node = ctx.wallet(), ctx.node
    txid = as_str(txid)
    wtx = w.txs.get(txid)
    if wtx is None:
        raise RPCFailure(-5, "Invalid or non-wallet transaction id")
    if wtx.height is not None or txid in node.mempool or wtx.abandoned:
        raise RPCFailure(-5, "Transaction not eligible for abandonment")
    w.set_flag(txid, "abandoned", True)
    wtx.abandoned = True
    w.deactivate(txid)
    return None


def lockunspent(ctx, unlock, transactions=None, persistent=False):
    w = ctx.wallet()
    ops = [(as_str(as_obj(t).get("txid")), as_int(t.get("vout"))) for t in as_list(transactions, [])]
    if as_bool(unlock):
        if transactions is None:
            w.locked.clear()
        w.locked -= set(ops)
    else:
        w.locked |= set(ops)
    return True


METHODS = {f.__name__: f for f in (
    createwallet, loadwallet, unloadwallet, listwallets, listwalletdir, getwalletinfo,
    importdescriptors, listdescriptors, getnewaddress, getrawchangeaddress, getaddressinfo,
    getbalances, getbalance, listunspent, rescanblockchain, abandontransaction, lockunspent)}
