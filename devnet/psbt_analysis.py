"""`analyzepsbt` the way Bitcoin Core computes it (src/node/psbt.cpp), for the script
shapes devnet knows: P2WPKH, P2WSH multisig, and P2WSH scripts that start with a multisig
and offer a `pkh(K) + older(N)` alternative (Custos's decaying template,
`or_d(multi(…), and_v(v:pkh(K), older(N)))`).

Per input: `has_utxo`; `is_final` (a final witness or scriptSig is present); `missing`
(for P2WPKH and plain multisig: key ids — hash160 — of the keys whose signature a signer
would still be asked for, in script order, stopping once the threshold is met: Core's
`ProduceSignature` walk) and `next` (updater without UTXO or witness script, signer while
signatures are missing, finalizer when satisfiable). For the miniscript shape devnet
reports `next` but no `missing` list.

`estimated_vsize` is the signed size with Core's dummy signatures (72 bytes: DER with
33-byte R and 32-byte S, plus the sighash byte) and the smallest satisfaction Core's
dummy checker allows (its CheckSequence is always true, so the `older()` branch counts
when it is smaller); omitted when any input has a shape devnet cannot size.
"""
from __future__ import annotations

import hashlib
from decimal import Decimal


from devnet.encoding import btc, btc_kvb, ser_compact
from devnet.txutil import strip_witness

DUMMY_SIG = 72
PUBKEY = 33
ROLES = ("creator", "updater", "signer", "finalizer", "extractor")


def hash160(data: bytes) -> bytes:
    return hashlib.new("ripemd160", hashlib.sha256(data).digest()).digest()


def _pushes(script: bytes) -> list[tuple[int, bytes | None]]:
    """(opcode, data) pairs; data None for non-push opcodes."""
    out, i = [], 0
    while i < len(script):
        op = script[i]
        i += 1
        if 1 <= op <= 0x4E:
            n = op if op < 0x4C else int.from_bytes(script[i:i + {0x4C: 1, 0x4D: 2, 0x4E: 4}[op]], "little")
            i += 0 if op < 0x4C else {0x4C: 1, 0x4D: 2, 0x4E: 4}[op]
            out.append((op, script[i:i + n]))
            i += n
        else:
            out.append((op, None))
    return out


def leading_multisig(ws: bytes):
    """(m, [pubkey bytes]) of the multisig the script starts with, or None."""
    ops = _pushes(ws)
    if len(ops) < 4 or not 0x51 <= ops[0][0] <= 0x60:
        return None
    m, keys, j = ops[0][0] - 0x50, [], 1
    while j < len(ops) and ops[j][1] is not None and len(ops[j][1]) == 33:
        keys.append(ops[j][1])
        j += 1
    if j + 1 >= len(ops) or ops[j][0] != 0x50 + len(keys) or ops[j + 1][0] not in (0xAE, 0xAF):
        return None
    return m, keys, ops[j + 2:]


def timelock_alternative(rest) -> tuple[bytes, int] | None:
    """(key hash, N) of `IFDUP NOTIF DUP HASH160 <h> EQUALVERIFY CHECKSIGVERIFY <N> CSV ENDIF`."""
    shape = [op for op, _ in rest]
    if len(rest) != 10 or shape[:4] != [0x73, 0x64, 0x76, 0xA9] or shape[5:7] != [0x88, 0xAD] or \
            shape[8:] != [0xB2, 0x68] or rest[4][1] is None or len(rest[4][1]) != 20:
        return None
    n_op, n_data = rest[7]
    n = n_op - 0x50 if 0x51 <= n_op <= 0x60 else int.from_bytes(n_data or b"", "little")
    return rest[4][1], n


def _witness_len(items: list[int]) -> int:
    return len(ser_compact(len(items))) + sum(len(ser_compact(n)) + n for n in items)


def analyze_input(psbt, i: int) -> tuple[dict, int | None]:
    """(Core's per-input analysis, the input's witness size in WU once signed or None)."""
    inp = psbt.inputs[i]
    utxo = inp.utxo
    final = inp.final_scriptwitness is not None or inp.final_scriptsig is not None
    entry = {"has_utxo": utxo is not None, "is_final": final}
    if final:
        w = inp.final_scriptwitness.serialize() if inp.final_scriptwitness is not None else b"\x00"
        return entry, len(w)
    if utxo is None:
        entry["next"] = "updater"
        return entry, None
    spk = utxo.script_pubkey
    kind = spk.script_type()
    sigs = {p.sec(): s for p, s in inp.partial_sigs.items()}
    if kind == "p2wpkh":
        program = spk.data[2:]
        if any(hash160(p) == program for p in sigs):
            entry["next"] = "finalizer"
        else:
            entry.update(missing={"signatures": [program.hex()]}, next="signer")
        return entry, _witness_len([DUMMY_SIG, PUBKEY])
    if kind != "p2wsh":
        entry["next"] = "signer"
        return entry, None
    ws = inp.witness_script
    if ws is None or hashlib.sha256(ws.data).digest() != spk.data[2:]:
        entry.update(missing={"witnessscript": spk.data[2:].hex()}, next="updater")
        return entry, None
    lead = leading_multisig(ws.data)
    if lead is None:
        entry["next"] = "signer"
        return entry, None
    m, keys, rest = lead
    multisig_size = _witness_len([0] + [DUMMY_SIG] * m + [len(ws.data)])
    missing, found = [], 0
    for k in keys:
        if found >= m:
            break
        if k in sigs:
            found += 1
        else:
            missing.append(hash160(k).hex())
    if not rest:
        if found >= m:
            entry["next"] = "finalizer"
        else:
            entry.update(missing={"signatures": missing}, next="signer")
        return entry, multisig_size
    alt = timelock_alternative(rest)
    if alt is None:
        entry["next"] = "signer"
        return entry, None
    key_hash, n = alt
    timelock_size = _witness_len([DUMMY_SIG, PUBKEY, 0, 0, 0, len(ws.data)])
    seq_ok = psbt.tx.version >= 2 and not inp.vin.sequence & (1 << 31) and \
        (inp.vin.sequence & 0xFFFF) >= n and not inp.vin.sequence & (1 << 22)
    alt_signed = any(hash160(p) == key_hash for p in sigs) and seq_ok
    entry["next"] = "finalizer" if found >= m or alt_signed else "signer"
    return entry, min(multisig_size, timelock_size)


def analyzepsbt_result(psbt) -> dict:
    inputs, witness, sized = [], 2, True
    total_in, known = 0, True
    for i in range(len(psbt.inputs)):
        entry, w = analyze_input(psbt, i)
        inputs.append(entry)
        if psbt.inputs[i].utxo is None:
            known = False
        else:
            total_in += psbt.inputs[i].utxo.value
        if w is None:
            sized = False
        else:
            witness += w
    out = {"inputs": inputs}
    if known:
        fee = total_in - sum(o.value for o in psbt.tx.vout)
        if sized:
            vsize = (4 * len(strip_witness(psbt.tx)) + witness + 3) // 4
            out.update({"estimated_vsize": vsize,
                        "estimated_feerate": btc_kvb(Decimal(fee * 1000 // vsize) / 1000)})
        out["fee"] = btc(fee)
    order = [e.get("next", "extractor") for e in inputs]
    out["next"] = min(order, key=ROLES.index) if order else "extractor"
    return out


def global_xpubs(psbt) -> list[dict]:
    """decodepsbt's `global_xpubs`."""
    return [{"xpub": xpub.to_base58(), "master_fingerprint": d.fingerprint.hex(),
             "path": "m" + "".join(f"/{i & 0x7FFFFFFF}{'h' if i >> 31 else ''}" for i in d.derivation)}
            for xpub, d in psbt.xpubs.items()]

