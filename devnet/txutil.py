"""Transaction helpers over embit's Transaction: ids, sizes, Core's decoded JSON.

Sizes: `weight` in weight units, `vsize` in virtual bytes (ceil(weight/4)).
"""
from __future__ import annotations

import io
from dataclasses import dataclass

from embit.transaction import Transaction

from devnet.encoding import btc, script_asm, sha256d, ser_compact, spk_json
from devnet.errors import RPCFailure, DESERIALIZATION_ERROR


@dataclass
class TxInfo:
    """A parsed transaction with its ids and sizes (immutable by convention)."""
    tx: Transaction
    raw: bytes          # full serialization (with witness if any)
    txid: str           # display hex
    wtxid: str
    base_size: int      # bytes without witness
    weight: int

    @property
    def vsize(self) -> int:
        return (self.weight + 3) // 4

    @property
    def is_coinbase(self) -> bool:
        vin = self.tx.vin[0]
        return len(self.tx.vin) == 1 and vin.txid == b"\x00" * 32 and vin.vout == 0xFFFFFFFF


def strip_witness(tx: Transaction) -> bytes:
    out = [tx.version.to_bytes(4, "little"), ser_compact(len(tx.vin))]
    for vin in tx.vin:
        sc = vin.script_sig.data
        out += [vin.txid[::-1], vin.vout.to_bytes(4, "little"), ser_compact(len(sc)), sc,
                vin.sequence.to_bytes(4, "little")]
    out.append(ser_compact(len(tx.vout)))
    for vout in tx.vout:
        sc = vout.script_pubkey.data
        out += [vout.value.to_bytes(8, "little"), ser_compact(len(sc)), sc]
    out.append(tx.locktime.to_bytes(4, "little"))
    return b"".join(out)


def info(tx: Transaction) -> TxInfo:
    base = strip_witness(tx)
    full = tx.serialize() if tx.is_segwit else base
    return TxInfo(tx, full, sha256d(base)[::-1].hex(), sha256d(full)[::-1].hex(),
                  len(base), len(base) * 3 + len(full))


def parse_tx(raw: bytes) -> TxInfo:
    """Parse raw bytes; RPCFailure(-22, "TX decode failed") when malformed or trailing."""
    try:
        stream = io.BytesIO(raw)
        tx = Transaction.read_from(stream)
        if stream.read(1):
            raise ValueError("trailing data")
    except Exception:
        raise RPCFailure(DESERIALIZATION_ERROR,
                         "TX decode failed. Make sure the tx has at least one input.") from None
    return info(tx)


def parse_tx_hex(value) -> TxInfo:
    if not isinstance(value, str):
        raise RPCFailure(-3, "hexstring must be a string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise RPCFailure(DESERIALIZATION_ERROR,
                         "TX decode failed. Make sure the tx has at least one input.") from None
    return parse_tx(raw)


def tx_json(ti: TxInfo, include_hex: bool = True) -> dict:
    """Core's TxToUniv shape (decoderawtransaction / getrawtransaction verbose)."""
    tx = ti.tx
    vin = []
    for v in tx.vin:
        if ti.is_coinbase:
            e = {"coinbase": v.script_sig.data.hex()}
        else:
            e = {"txid": v.txid.hex(), "vout": v.vout,
                 "scriptSig": {"asm": script_asm(v.script_sig.data), "hex": v.script_sig.data.hex()}}
        if v.witness and v.witness.items:
            e["txinwitness"] = [item.hex() for item in v.witness.items]
        e["sequence"] = v.sequence
        vin.append(e)
    vout = [{"value": btc(o.value), "n": n, "scriptPubKey": spk_json(o.script_pubkey.data)}
            for n, o in enumerate(tx.vout)]
    out = {"txid": ti.txid, "hash": ti.wtxid, "version": tx.version, "size": len(ti.raw),
           "vsize": ti.vsize, "weight": ti.weight, "locktime": tx.locktime,
           "vin": vin, "vout": vout}
    if include_hex:
        out["hex"] = ti.raw.hex()
    return out
