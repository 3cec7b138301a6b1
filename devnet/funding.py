"""Building, filling, signing and finalizing wallet transactions as PSBTs (embit).

Fee rates in sat/vB (Decimal), amounts in satoshis. Failures are RPCFailure with the
codes Core's wallet uses: -4 wallet errors (incl. "Insufficient funds" when funding a
PSBT), -5 invalid addresses, -8 invalid parameters, -3 wrong types.
"""
from __future__ import annotations

import math
from decimal import Decimal

from embit.psbt import PSBT, DerivationPath
from embit.script import Script, Witness
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from devnet import coinselect as cs
from devnet import descriptors as dsc
from devnet.encoding import feerate_sat_vb, parse_amount, spk_of_address, hex_bytes
from devnet.errors import RPCFailure, WALLET_ERROR, INVALID_PARAMETER, TYPE_ERROR
from devnet.params import as_int, as_number, as_obj, as_bool, as_list, as_str
from devnet import validation as v

SEQ_RBF = 0xFFFFFFFD
SEQ_NO_RBF = 0xFFFFFFFE


# ---- sizes -----------------------------------------------------------------------------

def input_vsize(wd) -> int:
    """Estimated vsize of spending one output of `wd` (72-byte signatures); memoized."""
    if "vsize" not in wd.cache:
        wd.cache["vsize"] = _input_vsize(wd)
    return wd.cache["vsize"]


def _input_vsize(wd) -> int:
    kind = wd.desc.scriptpubkey_type()
    if kind == "p2wpkh":
        return 68
    if kind == "p2tr":
        return 58
    if kind == "p2pkh":
        return 148
    if kind == "p2sh" and wd.desc.is_wrapped and wd.desc.is_pkh:
        return 91
    d = wd.at(0)
    try:
        ws = d.witness_script().data
    except Exception:
        return 150
    nsigs = max(1, len(wd.desc.keys))
    if wd.desc.is_basic_multisig:
        nsigs = int(str(wd.desc.miniscript.args[0]))
    # items count, multisig dummy, 72-byte signatures + sighash with length prefix, script
    witness = 1 + 1 + nsigs * 74 + len(ws) + 3
    return 41 + math.ceil(witness / 4) + (35 if kind == "p2sh" else 0)


def output_vsize(spk: bytes) -> int:
    return 8 + 1 + len(spk)


# ---- parameters ------------------------------------------------------------------------

def parse_outputs(outputs) -> list[tuple[bytes, int, str | None]]:
    """Core's outputs argument (object or array of one-key objects) → [(spk, sat, address)]."""
    if isinstance(outputs, dict):
        items = list(outputs.items())
    elif isinstance(outputs, list):
        items = []
        for o in outputs:
            if not isinstance(o, dict):
                raise RPCFailure(INVALID_PARAMETER, "Invalid parameter, key-value pair not an object as expected")
            if len(o) != 1:
                raise RPCFailure(INVALID_PARAMETER, "Invalid parameter, key-value pair must contain exactly one key")
            items += list(o.items())
    else:
        raise RPCFailure(TYPE_ERROR, "JSON value is not an object or array as expected")
    if not items:
        raise RPCFailure(INVALID_PARAMETER, "Invalid parameter, output argument must be non-null")
    out, seen = [], set()
    for key, value in items:
        if key == "data":
            out.append((b"\x6a" + _push(hex_bytes(value, "Data")), 0, None))
            continue
        try:
            spk = spk_of_address(key)
        except RPCFailure:
            raise RPCFailure(-5, f"Invalid Bitcoin address: {key}") from None
        if key in seen:
            raise RPCFailure(INVALID_PARAMETER, f"Invalid parameter, duplicated address: {key}")
        seen.add(key)
        sat = parse_amount(value)
        if sat <= 0:
            raise RPCFailure(TYPE_ERROR, "Amount out of range")
        out.append((spk, sat, key))
    return out


def _push(data: bytes) -> bytes:
    if len(data) < 0x4C:
        return bytes([len(data)]) + data
    return b"\x4c" + bytes([len(data)]) + data


def resolve_feerate(node, options: dict) -> Decimal:
    """Fee rate in sat/vB from fee_rate (sat/vB) / feeRate (BTC/kvB) / conf_target,
    falling back to -fallbackfee; -8 on conflicting options, -4 when no estimate."""
    fee_rate, fee_rate_btc = options.get("fee_rate"), options.get("feeRate")
    conf_target = options.get("conf_target")
    if fee_rate is not None and fee_rate_btc is not None:
        raise RPCFailure(INVALID_PARAMETER, "Cannot specify both fee_rate (sat/vB) and feeRate (BTC/kvB)")
    if (fee_rate is not None or fee_rate_btc is not None) and conf_target is not None:
        raise RPCFailure(INVALID_PARAMETER, "Cannot specify both conf_target and fee_rate. Please provide "
                         "either a confirmation target in blocks for automatic fee estimation, or an explicit fee rate.")
    if fee_rate is not None or fee_rate_btc is not None:
        rate = as_number(fee_rate) if fee_rate is not None else feerate_sat_vb(as_number(fee_rate_btc))
        if rate < v.MIN_RELAY_FEERATE:
            raise RPCFailure(WALLET_ERROR, f"Fee rate ({rate:.3f} sat/vB) is lower than the minimum fee "
                             f"rate setting ({v.MIN_RELAY_FEERATE:.3f} sat/vB)")
        return rate
    target = as_int(conf_target, default=6) if conf_target is not None else 6
    if not 1 <= target <= 1008:
        raise RPCFailure(INVALID_PARAMETER, "Invalid conf_target, must be between 1 and 1008")
    est = node.estimate_feerate(target)
    if est is not None:
        return Decimal(str(est))
    if node.fallbackfee:
        return Decimal(node.fallbackfee) / 1000
    raise RPCFailure(WALLET_ERROR, "Fee estimation failed. Fallbackfee is disabled. Wait a few blocks "
                     "or enable -fallbackfee.")


# ---- building --------------------------------------------------------------------------

def fund(node, wallet, inputs, outputs, locktime, options: dict, *, insufficient_code: int = WALLET_ERROR):
    """Build an unsigned PSBT paying `outputs`, funded from the wallet with change to its
    active internal descriptor. Returns (PSBT, fee_sat, changepos)."""
    options = as_obj(options, {})
    outs = parse_outputs(outputs)
    rate = resolve_feerate(node, options)
    replaceable = as_bool(options.get("replaceable"), True)
    subtract = [as_int(i) for i in as_list(options.get("subtractFeeFromOutputs"), [])]
    for i in subtract:
        if not 0 <= i < len(outs):
            raise RPCFailure(INVALID_PARAMETER, f"Invalid parameter, subtractfeefrom output {i} out of range")
    height = node.chain.height
    pre = _preselected(wallet, inputs)
    change = _change_target(node, wallet, options)
    change_spk = change[0] if change else b"\x00\x14" + b"\x00" * 20
    fixed = cs.TX_OVERHEAD_VSIZE + sum(output_vsize(s) for s, _, _ in outs)
    target = sum(a for _, a, _ in outs)
    cands = []
    if as_bool(options.get("add_inputs"), not pre):
        used = {(c.ref[0].txid, c.ref[0].n) for c in pre}
        minconf = as_int(options["minconf"]) if options.get("minconf") is not None else 0
        for out, _wtx in wallet.spendable(height, minconf, as_bool(options.get("include_unsafe"), False)):
            if (out.txid, out.n) not in used:
                cands.append(cs.Candidate(out.value, input_vsize(out.wd), (out, None)))
    try:
        if subtract:
            sel = _select_subtract(cands, target, rate, fixed, output_vsize(change_spk), pre)
        else:
            sel = cs.select(cands, target, rate, fixed, output_vsize(change_spk), pre)
    except cs.InsufficientFunds:
        raise RPCFailure(insufficient_code, "Insufficient funds") from None
    amounts = [a for _, a, _ in outs]
    if subtract:
        share, rem = divmod(sel.fee, len(subtract))
        for k, i in enumerate(subtract):
            amounts[i] -= share + (rem if k == 0 else 0)
            if amounts[i] < v.dust_threshold(outs[i][0]):
                raise RPCFailure(WALLET_ERROR, "The transaction amount is too small to pay the fee")
    vout = [TransactionOutput(a, Script(s)) for (s, _, _), a in zip(outs, amounts)]
    changepos = -1
    if sel.change and change is None:
        raise RPCFailure(WALLET_ERROR, "Can't generate a change-address key. No descriptors for the "
                         "requested change type available.")
    if sel.change:
        changepos = as_int(options["changePosition"]) if options.get("changePosition") is not None \
            else len(vout)
        if not 0 <= changepos <= len(vout):
            raise RPCFailure(INVALID_PARAMETER, "changePosition out of bounds")
        vout.insert(changepos, TransactionOutput(sel.change, Script(change[0])))
        if change[1] is not None:
            wallet.mark_used(change[1], change[2])
    seq_default = SEQ_RBF if replaceable else SEQ_NO_RBF
    vin = []
    for c in sel.chosen:
        out, seq = c.ref
        vin.append(TransactionInput(bytes.fromhex(out.txid), out.n,
                                    sequence=as_int(seq) if seq is not None else seq_default))
    lt = as_int(locktime) if locktime is not None else height
    tx = Transaction(version=2, vin=vin, vout=vout, locktime=lt)
    psbt = PSBT(tx)
    fill(node, wallet, psbt)
    if as_bool(options.get("lockUnspents"), False):
        wallet.locked |= {(c.ref[0].txid, c.ref[0].n) for c in sel.chosen}
    return psbt, sel.fee, changepos


def _preselected(wallet, inputs) -> list[cs.Candidate]:
    """Explicit inputs: they must be unspent wallet outputs (-8 / -4 otherwise)."""
    pre = []
    for item in as_list(inputs, []):
        item = as_obj(item)
        op = (as_str(item.get("txid")), as_int(item.get("vout")))
        out = wallet.outputs.get(op)
        if out is None:
            raise RPCFailure(INVALID_PARAMETER, "Unable to find UTXO for external input")
        if op in wallet.spent:
            raise RPCFailure(WALLET_ERROR, "Input not found or already spent")
        pre.append(cs.Candidate(out.value, input_vsize(out.wd), (out, item.get("sequence"))))
    return pre


def _select_subtract(cands, target, rate, fixed, change_vsize, pre):
    """Fees come out of the outputs: select for the bare target, then pay the fee."""
    sel = cs.select(cands, target, 0, fixed, change_vsize, pre)
    vs = fixed + sum(c.vsize for c in sel.chosen)
    total = sum(c.value for c in sel.chosen)
    fee_change = cs.fee_for(vs + change_vsize, rate)
    change = total - target
    if change >= cs.MIN_CHANGE:
        return cs.Selection(sel.chosen, fee_change, change)
    return cs.Selection(sel.chosen, cs.fee_for(vs, rate) + change, 0) if change else \
        cs.Selection(sel.chosen, cs.fee_for(vs, rate), 0)


def _change_target(node, wallet, options):
    """(spk, WalletDescriptor|None, index) for change, or None when none available."""
    addr = options.get("changeAddress")
    if addr is not None:
        try:
            return spk_of_address(addr), None, None
        except RPCFailure:
            raise RPCFailure(-5, "Change address must be a valid bitcoin address") from None
    otype = options.get("change_type")
    if otype is not None and otype not in ("bech32", "bech32m", "legacy", "p2sh-segwit"):
        raise RPCFailure(-5, f"Unknown change type '{otype}'")
    wd = wallet.active(True, otype)
    if wd is None:
        return None
    idx = wd.rec["next_index"] if wd.ranged else 0
    return dsc.derive_spk(wd.desc, idx), wd, idx


# ---- PSBT data -------------------------------------------------------------------------

def fill(node, wallet, psbt: PSBT, bip32derivs: bool = True) -> None:
    """Add UTXOs, witness scripts and key origins for every input/output the wallet knows."""
    parents = {}
    for i, inp in enumerate(psbt.inputs):
        txid = inp.txid.hex()
        if inp.non_witness_utxo is None:
            if txid not in parents:
                found = node.lookup_tx(txid)
                parents[txid] = found[0].tx if found is not None else None
            inp.non_witness_utxo = parents[txid]
        out = wallet.outputs.get((txid, inp.vout))
        if out is None:
            continue
        if inp.witness_utxo is None:
            inp.witness_utxo = TransactionOutput(out.value, Script(out.spk))
        _scope_scripts(inp, out.wd, out.index, bip32derivs)
    for o in psbt.outputs:
        hit = wallet.spk_map.get(o.script_pubkey.data)
        if hit:
            _scope_scripts(o, hit[0], hit[1], bip32derivs)


def _scope_scripts(scope, wd, index, bip32derivs):
    d = wd.at(index)
    if d.is_taproot:
        if bip32derivs:
            for k in d.keys:
                if k.origin is not None:
                    scope.taproot_bip32_derivations[k.get_public_key()] = (
                        [], DerivationPath(k.origin.fingerprint, k.origin.derivation))
        scope.taproot_internal_key = d.keys[0].get_public_key()
        return
    kind = d.scriptpubkey_type()
    if kind in ("p2wsh", "p2sh") or d.is_wrapped:
        try:
            ws = d.witness_script()
            if ws is not None and kind != "p2wpkh":
                scope.witness_script = ws
        except Exception:
            pass
        try:
            rs = d.redeem_script()
            if rs is not None and kind == "p2sh":
                scope.redeem_script = rs
        except Exception:
            pass
    if bip32derivs:
        for k in d.keys:
            if k.origin is not None:
                scope.bip32_derivations[k.get_public_key()] = DerivationPath(
                    k.origin.fingerprint, k.origin.derivation)


def sign(wallet, psbt: PSBT) -> int:
    """Sign every input the wallet holds private keys for; returns signatures added."""
    if not wallet.private_keys_enabled:
        return 0
    count = 0
    for wd in wallet.descs:
        if dsc.has_private(wd.desc):
            count += psbt.sign_with(wd.desc)
    return count


def finalize(psbt: PSBT) -> Transaction | None:
    """Fill final witnesses for p2wpkh, p2tr key path and wsh multisig inputs that have
    enough signatures; return the final transaction when every input is final."""
    from embit.finalizer import parse_multisig
    complete = True
    for inp in psbt.inputs:
        if inp.final_scriptwitness is not None and inp.final_scriptwitness.items:
            continue
        spk = inp.script_pubkey
        kind = spk.script_type() if spk else None
        if kind == "p2wpkh" and len(inp.partial_sigs) == 1:
            (pub, sig), = inp.partial_sigs.items()
            inp.final_scriptwitness = Witness([sig, pub.sec()])
        elif kind == "p2tr" and inp.taproot_sigs:
            key_sigs = [s for (pub, leaf), s in inp.taproot_sigs.items() if leaf is None]
            if not key_sigs:
                complete = False
                continue
            inp.final_scriptwitness = Witness([key_sigs[0]])
        elif kind == "p2wsh" and inp.witness_script is not None:
            try:
                m, pubs = parse_multisig(inp.witness_script)
            except Exception:
                complete = False
                continue
            sigs = [inp.partial_sigs[p] for p in pubs if p in inp.partial_sigs][:m]
            if len(sigs) < m:
                complete = False
                continue
            inp.final_scriptwitness = Witness([b""] + sigs + [inp.witness_script.data])
        else:
            complete = False
            continue
        inp.partial_sigs.clear()
        inp.bip32_derivations.clear()
        inp.witness_script = None
    if not complete:
        return None
    tx = Transaction.parse(psbt.tx.serialize())
    for vin, inp in zip(tx.vin, psbt.inputs):
        vin.witness = inp.final_scriptwitness
        if inp.final_scriptsig is not None:
            vin.script_sig = inp.final_scriptsig
    return tx
