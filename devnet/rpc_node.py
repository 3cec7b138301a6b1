"""Node RPCs: chain queries, raw transactions, fee estimates, mining, utility (the
mempool and broadcast RPCs are in `rpc_mempool`).

Each handler is `fn(ctx, *params)`; the server holds the node lock while it runs.
Amounts leave as Decimal BTC; failures are RPCFailure with Core's codes.
"""
from __future__ import annotations

import builtins

from devnet import descriptors as dsc
from devnet.chain import BlockIndex
from devnet.encoding import (btc, btc_kvb, hash_param, spk_json, spk_of_address, address_of, script_type)
from devnet.errors import (RPCFailure, TxRejected, INVALID_ADDRESS_OR_KEY, INVALID_PARAMETER,
                           VERIFY_ERROR)
from devnet.params import as_bool, as_int, as_list, as_str
from devnet.txutil import parse_tx_hex, tx_json
from devnet import validation as v

VERSION = 100          # devnet 0.1.0
SUBVERSION = "/devnet:0.1/"


def _bi(ctx, block_hash) -> BlockIndex:
    bi = ctx.node.chain.by_hash.get(hash_param(block_hash, "blockhash"))
    if bi is None:
        raise RPCFailure(INVALID_ADDRESS_OR_KEY, "Block not found")
    return bi


def header_json(ctx, bi: BlockIndex) -> dict:
    chain = ctx.node.chain
    blk = bi.block
    active = chain.is_active(bi)
    out = {"hash": bi.hash, "confirmations": chain.height - bi.height + 1 if active else -1, "height": bi.height,
           "version": blk.version, "versionHex": f"{blk.version:08x}", "merkleroot": blk.merkle[::-1].hex(),
           "time": blk.time, "mediantime": bi.mtp, "nonce": blk.nonce, "bits": f"{blk.bits:08x}",
           "target": f"{0x7FFFFF << (8 * 29):064x}",
           "difficulty": 4.656542373906925e-10, "chainwork": f"{bi.chainwork:064x}", "nTx": len(blk.txs)}
    if bi.height:
        out["previousblockhash"] = blk.prev[::-1].hex()
    if active and bi.height < chain.height:
        out["nextblockhash"] = chain.blocks[bi.height + 1].hash
    return out


def getblockcount(ctx):
    return ctx.node.chain.height


def getbestblockhash(ctx):
    return ctx.node.chain.tip.hash


def getblockhash(ctx, height):
    h = as_int(height)
    if not 0 <= h <= ctx.node.chain.height:
        raise RPCFailure(INVALID_PARAMETER, "Block height out of range")
    return ctx.node.chain.blocks[h].hash


def getblockheader(ctx, blockhash, verbose=True):
    bi = _bi(ctx, blockhash)
    return header_json(ctx, bi) if as_bool(verbose, True) else bi.block.header().hex()


def getblock(ctx, blockhash, verbosity=1):
    bi = _bi(ctx, blockhash)
    verbosity = int(verbosity) if isinstance(verbosity, bool) else as_int(verbosity)
    blk = bi.block
    if verbosity <= 0:
        return blk.serialize().hex()
    out = header_json(ctx, bi)
    raw_len = len(blk.serialize())
    stripped = 80 + 1 + sum(t.base_size for t in blk.txs)
    out.update({"strippedsize": stripped, "size": raw_len, "weight": blk.weight})
    if verbosity == 1:
        out["tx"] = [t.txid for t in blk.txs]
        return out
    verbosity = min(verbosity, 3)           # like Core: anything above 3 shows prevouts too
    undo = ctx.node.chain.undo.get(bi.hash)     # Core: fee and prevout need the block's undo data
    out["tx"] = [tx_json(t) for t in blk.txs]
    if undo is None:
        return out
    for pos, (entry, t) in enumerate(zip(out["tx"], blk.txs)):
        if pos == 0:
            continue
        spent = dict(undo[pos])
        coins = [spent.get((vin.txid.hex(), vin.vout)) for vin in t.tx.vin]
        if any(c is None for c in coins):
            continue
        entry["fee"] = btc(sum(c.value for c in coins) - sum(o.value for o in t.tx.vout))
        if verbosity == 3:
            for vin_json, c in zip(entry["vin"], coins):
                vin_json["prevout"] = {"generated": c.coinbase, "height": c.height, "value": btc(c.value),
                                       "scriptPubKey": spk_json(c.spk)}
    return out


def getblockchaininfo(ctx):
    chain = ctx.node.chain
    tip = chain.tip
    return {"chain": "regtest", "blocks": chain.height, "headers": chain.height,
            "bestblockhash": tip.hash, "bits": "207fffff", "target": f"{0x7FFFFF << (8 * 29):064x}",
            "difficulty": 4.656542373906925e-10, "time": tip.block.time, "mediantime": tip.mtp,
            "verificationprogress": 1, "initialblockdownload": False,
            "chainwork": f"{tip.chainwork:064x}", "size_on_disk": 0, "pruned": False, "warnings": []}


def getnetworkinfo(ctx):
    return {"version": VERSION, "subversion": SUBVERSION, "protocolversion": 70016,
            "localservices": "0000000000000c09", "localservicesnames": ["NETWORK", "WITNESS"],
            "localrelay": True, "timeoffset": 0, "networkactive": False, "connections": 0,
            "connections_in": 0, "connections_out": 0, "networks": [],
            "relayfee": btc_kvb(v.MIN_RELAY_FEERATE), "incrementalfee": btc_kvb(1),
            "localaddresses": [], "warnings": []}


def getrawtransaction(ctx, txid, verbose=False, blockhash=None):
    txid = hash_param(txid, "txid")
    if isinstance(verbose, int) and not isinstance(verbose, bool):
        verbose = verbose > 0
    if blockhash is not None:
        # Core: look in that block only (works without -txindex)
        bi = ctx.node.chain.by_hash.get(hash_param(blockhash, "parameter 3"))
        if bi is None:
            raise RPCFailure(INVALID_ADDRESS_OR_KEY, "Block hash not found")
        ti = next((t for t in bi.block.txs if t.txid == txid), None)
        if ti is None:
            raise RPCFailure(INVALID_ADDRESS_OR_KEY, "No such transaction found in the provided block. "
                             "Use gettransaction for wallet transactions.")
    else:
        found = ctx.node.lookup_tx(txid)
        if found is None:
            raise RPCFailure(INVALID_ADDRESS_OR_KEY, "No such mempool or blockchain transaction. "
                             "Use gettransaction for wallet transactions.")
        ti, bi = found
    if not as_bool(verbose, False):
        return ti.raw.hex()
    out = tx_json(ti)
    if blockhash is not None:
        blocks = ctx.node.chain.blocks
        out["in_active_chain"] = bi.height < len(blocks) and blocks[bi.height] is bi
    if bi is not None:
        chain = ctx.node.chain
        out.update({"blockhash": bi.hash, "confirmations": chain.height - bi.height + 1,
                    "time": bi.block.time, "blocktime": bi.block.time})
    return out


def decoderawtransaction(ctx, hexstring, iswitness=None):
    return tx_json(parse_tx_hex(hexstring), include_hex=False)


def gettxout(ctx, txid, n, include_mempool=True):
    node = ctx.node
    op = (hash_param(txid, "txid"), as_int(n))
    if as_bool(include_mempool, True):
        if op in node.mempool.spenders:
            return None
        e = node.mempool.entries.get(op[0])
        if e is not None and op[1] < len(e.ti.tx.vout):
            o = e.ti.tx.vout[op[1]]
            return _txout(node, 0, o.value, o.script_pubkey.data, False)
    coin = node.chain.utxos.get(op)
    if coin is None:
        return None
    return _txout(node, node.chain.height - coin.height + 1, coin.value, coin.spk, coin.coinbase)


def _txout(node, conf, value, spk, coinbase):
    return {"bestblock": node.chain.tip.hash, "confirmations": conf, "value": btc(value),
            "scriptPubKey": spk_json(spk), "coinbase": coinbase}


def estimatesmartfee(ctx, conf_target, estimate_mode="economical"):
    target = as_int(conf_target)
    if not 1 <= target <= 1008:
        raise RPCFailure(INVALID_PARAMETER, "Invalid conf_target, must be between 1 and 1008")
    mode = as_str(estimate_mode, "economical").lower()
    if mode not in ("unset", "economical", "conservative"):
        raise RPCFailure(INVALID_PARAMETER, "Invalid estimate_mode parameter, must be one of: "
                         "\"unset\", \"economical\", \"conservative\"")
    rate = ctx.node.estimate_feerate(target)
    if rate is None:
        return {"errors": ["Insufficient data or no feerate found"], "blocks": 0}
    return {"feerate": btc_kvb(rate), "blocks": target}


# ---- mining ----------------------------------------------------------------------------

def _nblocks(n):
    n = as_int(n)
    if n < 0:
        raise RPCFailure(INVALID_PARAMETER, "Invalid nblocks")
    return n


def generatetoaddress(ctx, nblocks, address, maxtries=None):
    n = _nblocks(nblocks)
    try:
        spk = spk_of_address(address)
    except RPCFailure:
        raise RPCFailure(INVALID_ADDRESS_OR_KEY, "Error: Invalid address") from None
    return ctx.node.mine(n, spk)


def _spk_of_output(output) -> bytes:
    output = as_str(output)
    try:
        return spk_of_address(output)
    except RPCFailure:
        desc = dsc.parse(output)
        if dsc.is_range(desc):
            raise RPCFailure(INVALID_PARAMETER, "Ranged descriptor not accepted. Maybe pass through deriveaddresses first?")
        return dsc.derive_spk(desc, 0)


def generatetodescriptor(ctx, num_blocks, descriptor, maxtries=None):
    return ctx.node.mine(_nblocks(num_blocks), _spk_of_output(descriptor))


def generateblock(ctx, output, transactions, submit=True):
    spk = _spk_of_output(output)
    txs = []
    for item in as_list(transactions):
        item = as_str(item)
        if len(item) == 64 and item.lower() in ctx.node.mempool.entries:
            txs.append(ctx.node.mempool.entries[item.lower()].ti)
        else:
            try:
                txs.append(parse_tx_hex(item))
            except RPCFailure:
                raise RPCFailure(-22, f"Transaction decode failed for {item}. Make sure the tx has "
                                 "at least one input.") from None
    try:
        hashes = ctx.node.mine(1, spk, txs)
    except TxRejected as exc:
        raise RPCFailure(VERIFY_ERROR, f"TestBlockValidity failed: {exc.message}") from None
    return {"hash": hashes[0]}


# ---- utility ---------------------------------------------------------------------------

def getdescriptorinfo(ctx, descriptor):
    text = as_str(descriptor)
    desc = dsc.parse(text)
    body = text.split("#")[0]
    return {"descriptor": dsc.add_checksum(dsc.public_string(desc)), "checksum": dsc.checksum(body),
            "isrange": dsc.is_range(desc), "issolvable": True, "hasprivatekeys": dsc.has_private(desc)}


def deriveaddresses(ctx, descriptor, range=None):  # noqa: A002 - Core's parameter name
    desc = dsc.parse(as_str(descriptor), require_checksum=True)
    if dsc.is_range(desc):
        if range is None:
            raise RPCFailure(INVALID_PARAMETER, "Range must be specified for a ranged descriptor")
        lo, hi = dsc.parse_range(range, True)
    else:
        if range is not None:
            raise RPCFailure(INVALID_PARAMETER, "Range should not be specified for an un-ranged descriptor")
        lo, hi = 0, 0
    out = []
    for i in builtins.range(lo, hi + 1):
        addr = address_of(dsc.derive_spk(desc, i))
        if addr is None:
            raise RPCFailure(INVALID_ADDRESS_OR_KEY, "Descriptor does not have a corresponding address")
        out.append(addr)
    return out




def validateaddress(ctx, address):
    address = as_str(address)
    try:
        spk = spk_of_address(address)
    except RPCFailure:
        return {"isvalid": False, "error_locations": [], "error": "Invalid or unsupported Segwit (Bech32) or Base58 encoding."}
    out = {"isvalid": True, "address": address, "scriptPubKey": spk.hex(),
           "isscript": script_type(spk) in ("scripthash", "witness_v0_scripthash"),
           "iswitness": script_type(spk).startswith("witness")}
    if out["iswitness"]:
        out["witness_version"] = 0 if spk[0] == 0 else spk[0] - 0x50
        out["witness_program"] = spk[2:].hex()
    return out


def syncwithvalidationinterfacequeue(ctx):
    return None


def uptime(ctx):
    return int(ctx.node.clock() - ctx.node.started)


def stop(ctx):
    ctx.server.request_stop()
    return "devnet stopping"


def getdifficulty(ctx):
    return 4.656542373906925e-10


def help(ctx, command=None):  # noqa: A001 - Core's method name
    table = ctx.server.methods
    if command is None:
        return "\n".join(sorted(table))
    fn = table.get(as_str(command))
    if fn is None:
        return f"help: unknown command: {command}"
    try:
        from devnet.server import bind_params
        bind_params(fn, [None] * 99)
    except RPCFailure as exc:
        return exc.message
    return command


METHODS = {f.__name__: f for f in (
    getblockcount, getbestblockhash, getblockhash, getblockheader, getblock, getblockchaininfo,
    getnetworkinfo, getrawtransaction, decoderawtransaction, gettxout, estimatesmartfee,
    generatetoaddress, generatetodescriptor, generateblock, getdescriptorinfo, deriveaddresses,
    validateaddress, syncwithvalidationinterfacequeue, uptime, stop, getdifficulty, help)}
