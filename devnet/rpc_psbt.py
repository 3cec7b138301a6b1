"""PSBT and spending RPCs: funding, processing, finalizing, combining, decoding,
sending and fee bumping. PSBTs are parsed and written with embit.

Errors: -22 for undecodable PSBTs/transactions, -4 wallet errors, -6 insufficient funds
(send*), -8 invalid parameters, -5 unknown wallet transactions.
"""
from __future__ import annotations

import math
from decimal import Decimal

from embit.psbt import PSBT
from embit.transaction import Transaction

from devnet import funding
from devnet.encoding import btc, spk_json
from devnet.errors import RPCFailure, WALLET_ERROR, DESERIALIZATION_ERROR, INVALID_PARAMETER
from devnet.psbt_analysis import analyzepsbt_result, global_xpubs
from devnet.params import as_bool, as_list, as_obj, as_str, as_number
from devnet.txutil import info, tx_json
from devnet import validation as v


def parse_psbt(value) -> PSBT:
    text = as_str(value)
    try:
        return PSBT.from_string(text)
    except Exception as exc:
        raise RPCFailure(DESERIALIZATION_ERROR, f"TX decode failed {exc}".strip()) from None


def walletcreatefundedpsbt(ctx, inputs, outputs, locktime=0, options=None, bip32derivs=True):
    w = ctx.wallet()
    psbt, fee, changepos = funding.fund(ctx.node, w, inputs, outputs,
                                        locktime if locktime else None, options)
    return {"psbt": psbt.to_string(), "fee": btc(fee), "changepos": changepos}


def _process(ctx, w, psbt, sign=True, finalize=True):
    funding.fill(ctx.node, w, psbt)
    if sign:
        funding.sign(w, psbt)
    tx = funding.finalize(psbt) if finalize else None
    return tx


def walletprocesspsbt(ctx, psbt, sign=True, sighashtype="DEFAULT", bip32derivs=True, finalize=True):
    w = ctx.wallet()
    p = parse_psbt(psbt)
    if as_str(sighashtype, "DEFAULT") not in ("DEFAULT", "ALL"):
        raise RPCFailure(INVALID_PARAMETER, "devnet signs with SIGHASH_DEFAULT/ALL only")
    tx = _process(ctx, w, p, as_bool(sign, True), as_bool(finalize, True))
    out = {"psbt": p.to_string(), "complete": tx is not None}
    if tx is not None:
        out["hex"] = tx.serialize().hex()
    return out


def finalizepsbt(ctx, psbt, extract=True):
    p = parse_psbt(psbt)
    tx = funding.finalize(p)
    if tx is not None and as_bool(extract, True):
        return {"hex": tx.serialize().hex(), "complete": True}
    return {"psbt": p.to_string(), "complete": tx is not None}


def combinepsbt(ctx, txs):
    items = [parse_psbt(t) for t in as_list(txs)]
    if not items:
        raise RPCFailure(INVALID_PARAMETER, "Parameter 'txs' cannot be empty")
    base = items[0]
    for other in items[1:]:
        if other.tx.txid() != base.tx.txid():
            raise RPCFailure(INVALID_PARAMETER, "PSBTs not compatible (different transactions)")
        for a, b in zip(base.inputs, other.inputs):
            a.update(b)
        for a, b in zip(base.outputs, other.outputs):
            a.update(b)
    return base.to_string()


def _script_json(script) -> dict:
    from embit.finalizer import parse_multisig
    from devnet.encoding import script_asm
    try:
        parse_multisig(script)
        kind = "multisig"
    except Exception:
        kind = "nonstandard"
    return {"asm": script_asm(script.data), "hex": script.data.hex(), "type": kind}


def _derivs(scope):
    return [{"pubkey": pub.sec().hex(), "master_fingerprint": d.fingerprint.hex(),
             "path": "m" + "".join(f"/{i & 0x7FFFFFFF}{'h' if i >> 31 else ''}" for i in d.derivation)}
            for pub, d in scope.bip32_derivations.items()]


def decodepsbt(ctx, psbt):
    p = parse_psbt(psbt)
    tx = p.tx
    ins, total_in, known = [], 0, True
    for inp in p.inputs:
        e = {}
        if inp.non_witness_utxo is not None:
            e["non_witness_utxo"] = tx_json(info(inp.non_witness_utxo), include_hex=False)
        if inp.witness_utxo is not None:
            e["witness_utxo"] = {"amount": btc(inp.witness_utxo.value),
                                 "scriptPubKey": spk_json(inp.witness_utxo.script_pubkey.data)}
        utxo = inp.utxo
        if utxo is None:
            known = False
        else:
            total_in += utxo.value
        if inp.partial_sigs:
            e["partial_signatures"] = {pub.sec().hex(): sig.hex() for pub, sig in inp.partial_sigs.items()}
        if inp.witness_script is not None:
            e["witness_script"] = _script_json(inp.witness_script)
        if inp.bip32_derivations:
            e["bip32_derivs"] = _derivs(inp)
        if inp.final_scriptwitness is not None:
            e["final_scriptwitness"] = [i.hex() for i in inp.final_scriptwitness.items]
        ins.append(e)
    outs = []
    for o in p.outputs:
        e = {}
        if o.witness_script is not None:
            e["witness_script"] = _script_json(o.witness_script)
        if o.bip32_derivations:
            e["bip32_derivs"] = _derivs(o)
        outs.append(e)
    out = {"tx": tx_json(info(tx), include_hex=False), "global_xpubs": global_xpubs(p), "psbt_version": 0,
           "proprietary": [], "unknown": {}, "inputs": ins, "outputs": outs}
    if known:
        out["fee"] = btc(total_in - sum(o.value for o in tx.vout))
    return out


def analyzepsbt(ctx, psbt):
    """Core's AnalyzePSBT for the shapes devnet knows (see devnet.psbt_analysis)."""
    return analyzepsbt_result(parse_psbt(psbt))


# ---- sending ---------------------------------------------------------------------------

def _send(ctx, outputs, options, subtract_indices=()):
    w = ctx.wallet()
    if not w.private_keys_enabled:
        raise RPCFailure(WALLET_ERROR, "Error: Private keys are disabled for this wallet")
    if subtract_indices:
        options = {**options, "subtractFeeFromOutputs": list(subtract_indices)}
    psbt, fee, _ = funding.fund(ctx.node, w, [], outputs, None, options, insufficient_code=-6)
    tx = _process(ctx, w, psbt)
    if tx is None:
        raise RPCFailure(WALLET_ERROR, "Signing transaction failed")
    acc = ctx.node.submit(info(tx), max_feerate=None)
    return acc.entry.ti.txid


def _fee_options(conf_target=None, estimate_mode=None, fee_rate=None, replaceable=None) -> dict:
    opts = {}
    if conf_target is not None:
        opts["conf_target"] = conf_target
    if fee_rate is not None:
        opts["fee_rate"] = fee_rate
    if replaceable is not None:
        opts["replaceable"] = replaceable
    return opts


def sendtoaddress(ctx, address, amount, comment=None, comment_to=None, subtractfeefromamount=False,
                  replaceable=None, conf_target=None, estimate_mode=None, avoid_reuse=None,
                  fee_rate=None, verbose=False):
    as_str(address)
    txid = _send(ctx, [{address: amount}], _fee_options(conf_target, estimate_mode, fee_rate, replaceable),
                 [0] if as_bool(subtractfeefromamount, False) else ())
    return {"txid": txid, "fee_reason": "devnet"} if as_bool(verbose, False) else txid


def sendmany(ctx, dummy, amounts, minconf=None, comment=None, subtractfeefrom=None, replaceable=None,
             conf_target=None, estimate_mode=None, fee_rate=None, verbose=False):
    if dummy not in ("", None):
        raise RPCFailure(-8, "Dummy value must be set to \"\"")
    amounts = as_obj(amounts)
    keys = list(amounts)
    sub = [keys.index(a) for a in as_list(subtractfeefrom, [])]
    return _send(ctx, [{k: v_} for k, v_ in amounts.items()],
                 _fee_options(conf_target, estimate_mode, fee_rate, replaceable), sub)


def send(ctx, outputs, conf_target=None, estimate_mode=None, fee_rate=None, options=None):
    opts = {**as_obj(options, {}), **_fee_options(conf_target, estimate_mode, fee_rate)}
    txid = _send(ctx, outputs, opts)
    tx = ctx.node.mempool.entries[txid].ti
    return {"txid": txid, "complete": True, "hex": tx.raw.hex()}


def _bump(ctx, txid, options, sign: bool):
    node, w = ctx.node, ctx.wallet()
    wtx = w.txs.get(as_str(txid))
    if wtx is None:
        raise RPCFailure(-5, "Invalid or non-wallet transaction id")
    if txid not in node.mempool:
        raise RPCFailure(WALLET_ERROR, "Transaction has been mined, or is conflicted with a mined transaction"
                         if wtx.height is not None else "Transaction is not in the mempool")
    if not wtx.from_me:
        raise RPCFailure(WALLET_ERROR, "Transaction contains inputs that don't belong to this wallet")
    entry = node.mempool.entries[txid]
    options = as_obj(options, {})
    vsize = entry.ti.vsize if wtx.ti.tx.vin[0].witness and wtx.ti.tx.vin[0].witness.items else \
        funding_vsize(w, wtx)
    old_rate = Decimal(entry.fee) / entry.ti.vsize
    if options.get("fee_rate") is not None:
        rate = as_number(options["fee_rate"])
    else:
        rate = max(old_rate + v.MIN_RELAY_FEERATE, Decimal(str(node.estimate_feerate(6) or 0)))
    new_fee = max(math.ceil(rate * vsize), entry.fee + vsize * v.MIN_RELAY_FEERATE)
    if rate <= old_rate:
        raise RPCFailure(INVALID_PARAMETER, f"Insufficient total fee {btc(new_fee)}, must be at least "
                         f"{btc(entry.fee + vsize)} (oldFee {btc(entry.fee)} + incrementalFee {btc(vsize)})")
    tx = Transaction.parse(wtx.ti.raw)
    change = [n for n, o in enumerate(tx.vout) if o.script_pubkey.data in w.spk_map
              and w.spk_map[o.script_pubkey.data][0].rec["internal"]]
    if not change:
        raise RPCFailure(WALLET_ERROR, "Transaction does not have a change output")
    out = tx.vout[change[0]]
    out.value -= new_fee - entry.fee
    if out.value < v.dust_threshold(out.script_pubkey.data):
        raise RPCFailure(WALLET_ERROR, "Change output is too small to bump the fee")
    for vin in tx.vin:
        vin.witness = None
        vin.sequence = min(vin.sequence, funding.SEQ_RBF)
    psbt = PSBT(tx)
    funding.fill(node, w, psbt)
    result = {"origfee": btc(entry.fee), "fee": btc(new_fee), "errors": []}
    if not sign:
        return {"psbt": psbt.to_string(), **result}
    final = _process(ctx, w, psbt)
    if final is None:
        raise RPCFailure(WALLET_ERROR, "Can't sign transaction.")
    acc = node.submit(info(final), max_feerate=None)
    return {"txid": acc.entry.ti.txid, **result}


def funding_vsize(w, wtx) -> int:
    ins = sum(funding.input_vsize(w.outputs.get((v_.txid.hex(), v_.vout)).wd) if
              (v_.txid.hex(), v_.vout) in w.outputs else 68 for v_ in wtx.ti.tx.vin)
    return 11 + ins + sum(funding.output_vsize(o.script_pubkey.data) for o in wtx.ti.tx.vout)


def bumpfee(ctx, txid, options=None):
    if not ctx.wallet().private_keys_enabled:
        raise RPCFailure(WALLET_ERROR, "bumpfee is not available with wallets that have private keys "
                         "disabled. Use psbtbumpfee instead.")
    return _bump(ctx, txid, options, sign=True)


def psbtbumpfee(ctx, txid, options=None):
    return _bump(ctx, txid, options, sign=False)


METHODS = {f.__name__: f for f in (
    walletcreatefundedpsbt, walletprocesspsbt, finalizepsbt, combinepsbt, decodepsbt, analyzepsbt,
    sendtoaddress, sendmany, send, bumpfee, psbtbumpfee)}
