"""Chain-management RPCs: invalidateblock, reconsiderblock, preciousblock, getchaintips,
getindexinfo, scanblocks (a brute-force stand-in for Core's compact-filter scan).

Handlers are `fn(ctx, *params)` under the node lock; errors carry Core's codes.
"""
from __future__ import annotations

from devnet import descriptors as dsc
from devnet import reorg
from chain.derive import spk_deriver
from devnet.encoding import hash_param
from devnet.errors import RPCFailure, INVALID_ADDRESS_OR_KEY, INVALID_PARAMETER, MISC_ERROR
from devnet.params import as_int, as_list, as_str

FILTER_INDEX_NAME = "basic block filter index"


def invalidateblock(ctx, blockhash):
    reorg.invalidate(ctx.node, hash_param(blockhash, "blockhash"))
    return None


def reconsiderblock(ctx, blockhash):
    reorg.reconsider(ctx.node, hash_param(blockhash, "blockhash"))
    return None


def preciousblock(ctx, blockhash):
    reorg.precious(ctx.node, hash_param(blockhash, "blockhash"))
    return None


def getchaintips(ctx):
    chain = ctx.node.chain
    parents = {bi.block.prev[::-1].hex() for bi in chain.by_hash.values() if bi.height}
    tips = []
    for bi in chain.by_hash.values():
        if bi.hash in parents and bi is not chain.tip:
            continue
        if bi is chain.tip:
            status, branch = "active", 0
        else:
            b, branch = bi, 0
            while not chain.is_active(b):
                b, branch = chain.parent(b), branch + 1
            status = "invalid" if not reorg._valid(ctx.node, bi) else "valid-fork"
        tips.append({"height": bi.height, "hash": bi.hash, "branchlen": branch, "status": status})
    return sorted(tips, key=lambda t: -t["height"])


def getindexinfo(ctx, index_name=None):
    height = ctx.node.chain.height
    out = {"txindex": {"synced": True, "best_block_height": height}}
    if ctx.node.blockfilterindex:
        out[FILTER_INDEX_NAME] = {"synced": True, "best_block_height": height}
    if index_name is not None:
        name = as_str(index_name)
        return {name: out[name]} if name in out else {}
    return out


def derive_all(desc, lo: int, hi: int) -> set[bytes]:
    fast = spk_deriver(desc)
    return {fast(i) if fast else dsc.derive_spk(desc, i) for i in range(lo, hi + 1)}


def _scan_scripts(scanobjects) -> set[bytes]:
    spks: set[bytes] = set()
    for obj in as_list(scanobjects):
        if isinstance(obj, str):
            text, rng = obj, None
        elif isinstance(obj, dict) and isinstance(obj.get("desc"), str):
            text, rng = obj["desc"], obj.get("range")
        else:
            raise RPCFailure(INVALID_PARAMETER, "Scan object needs to be either a string or an object")
        desc = dsc.parse(text)
        if dsc.is_range(desc):
            lo, hi = dsc.parse_range(rng, True)
            spks |= derive_all(desc, lo, hi)
        else:
            spks.add(dsc.derive_spk(desc, 0))
    return spks


def scanblocks(ctx, action, scanobjects=None, start_height=0, stop_height=None, filtertype="basic",
               options=None):
    """start: the heights whose blocks pay or spend one of the scripts (outputs and the
    spent outputs of inputs, as BIP158 basic filters hold them; no false positives
    here). The scan runs to completion inside the call, so `status` is always null
    and `abort` always false, as on Core when no scan is running."""
    action = as_str(action)
    if action == "status":
        return None
    if action == "abort":
        return False
    if action != "start":
        raise RPCFailure(INVALID_PARAMETER, f"Invalid action '{action}'")
    if as_str(filtertype, "basic") != "basic":
        raise RPCFailure(INVALID_ADDRESS_OR_KEY, "Unknown filtertype")
    node = ctx.node
    if not node.blockfilterindex:
        raise RPCFailure(MISC_ERROR, "Index is not enabled for filtertype basic")
    if scanobjects is None:
        raise RPCFailure(MISC_ERROR, "scanobjects argument is required for the start action")
    chain = node.chain
    start = as_int(start_height) if start_height is not None else 0
    if not 0 <= start <= chain.height:
        raise RPCFailure(MISC_ERROR, "Invalid start_height")
    stop = chain.height if stop_height is None else as_int(stop_height)
    if not start <= stop <= chain.height:
        raise RPCFailure(MISC_ERROR, "Invalid stop_height")
    wanted = _scan_scripts(scanobjects)
    relevant = []
    for h in range(start, stop + 1):
        bi = chain.blocks[h]
        undo = chain.undo.get(bi.hash) or []
        hit = any(o.script_pubkey.data in wanted for t in bi.block.txs for o in t.tx.vout
                  if o.script_pubkey.data and o.script_pubkey.data[:1] != b"\x6a")
        if not hit:
            hit = any(coin.spk in wanted for spent in undo for _op, coin in spent)
        if hit:
            relevant.append(bi.hash)
    return {"from_height": start, "to_height": stop, "relevant_blocks": relevant, "completed": True}


METHODS = {f.__name__: f for f in (invalidateblock, reconsiderblock, preciousblock, getchaintips, getindexinfo,
                                   scanblocks)}
