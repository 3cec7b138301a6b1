"""Byte-level helpers shared by devnet: hashes, amounts, scripts, JSON.

Amounts are integer satoshis inside devnet; `btc()` turns them into `Decimal` BTC with 8
places only when building an RPC answer, and `dumps()` writes those Decimals as JSON
numbers (`50.00000000`) exactly like Core.
"""
from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal, InvalidOperation

from embit.networks import NETWORKS
from embit.script import Script

from devnet.errors import RPCFailure, TYPE_ERROR, INVALID_PARAMETER

NETWORK = NETWORKS["regtest"]
COIN = 100_000_000
MAX_MONEY = 21_000_000 * COIN


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def ser_compact(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def btc(sat: int) -> Decimal:
    """Integer satoshis → Decimal BTC quantized to 8 places (for JSON answers)."""
    return (Decimal(sat) / COIN).quantize(Decimal("0.00000001"))


def parse_amount(value, name: str = "amount") -> int:
    """A JSON BTC amount (number or numeric string) → integer satoshis.

    Raises -3 for a non-number, -3 "Invalid amount" for negative, out of range or
    sub-satoshi values, like Core's AmountFromValue.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        raise RPCFailure(TYPE_ERROR, "Amount is not a number or string")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise RPCFailure(TYPE_ERROR, "Invalid amount") from None
    sat = d * COIN
    if sat != sat.to_integral_value() or sat < 0 or sat > MAX_MONEY:
        raise RPCFailure(TYPE_ERROR, "Invalid amount" if sat >= 0 else "Amount out of range")
    return int(sat)


def feerate_sat_vb(btc_per_kvb) -> Decimal:
    """BTC/kvB → sat/vB (Decimal)."""
    return Decimal(str(btc_per_kvb)) * COIN / 1000


def btc_kvb(sat_per_vb) -> Decimal:
    """sat/vB → BTC/kvB quantized to 8 places."""
    return (Decimal(sat_per_vb) * 1000 / COIN).quantize(Decimal("0.00000001"))


def hex_bytes(value, name: str) -> bytes:
    """Decode a hex string parameter; -8 "<name> must be hexadecimal string" like Core."""
    if not isinstance(value, str):
        raise RPCFailure(TYPE_ERROR, f"{name} must be a string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise RPCFailure(INVALID_PARAMETER,
                         f"{name} must be hexadecimal string (not '{value[:64]}')") from None


def hash_param(value, name: str) -> str:
    """A 32-byte hash parameter in hex (block hash, txid); -8 on anything else."""
    if not isinstance(value, str):
        raise RPCFailure(TYPE_ERROR, f"{name} must be a string")
    if len(value) != 64 or not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise RPCFailure(INVALID_PARAMETER,
                         f"{name} must be of length 64 (not {len(value)}, for '{value[:70]}')"
                         if len(value) != 64 else f"{name} must be hexadecimal string (not '{value}')")
    return value.lower()


# ---- scripts -------------------------------------------------------------------------

def script_type(spk: bytes) -> str:
    """Core's scriptPubKey type name."""
    n = len(spk)
    if n == 22 and spk[0] == 0 and spk[1] == 20:
        return "witness_v0_keyhash"
    if n == 34 and spk[0] == 0 and spk[1] == 32:
        return "witness_v0_scripthash"
    if n == 34 and spk[0] == 0x51 and spk[1] == 32:
        return "witness_v1_taproot"
    if n == 4 and spk == b"\x51\x02\x4e\x73":
        return "anchor"
    if n == 25 and spk[:3] == b"\x76\xa9\x14" and spk[23:] == b"\x88\xac":
        return "pubkeyhash"
    if n == 23 and spk[:2] == b"\xa9\x14" and spk[22] == 0x87:
        return "scripthash"
    if n >= 1 and spk[0] == 0x6A:
        return "nulldata"
    if n in (35, 67) and spk[-1] == 0xAC and spk[0] in (33, 65):
        return "pubkey"
    if 4 <= n <= 42 and (spk[0] == 0 or 0x51 <= spk[0] <= 0x60) and spk[1] == n - 2:
        return "witness_unknown"
    if n > 3 and spk[-1] == 0xAE:
        return "multisig"
    return "nonstandard"


def address_of(spk: bytes) -> str | None:
    """bcrt1…/m…/2… address of a scriptPubKey, or None for scripts without one."""
    if script_type(spk) in ("nulldata", "pubkey", "multisig", "nonstandard"):
        return None
    try:
        return Script(spk).address(NETWORK)
    except Exception:
        return None


def spk_of_address(address) -> bytes:
    """Address → scriptPubKey; raises -5 "Invalid address" for anything not regtest."""
    from embit.script import address_to_scriptpubkey
    if not isinstance(address, str):
        raise RPCFailure(TYPE_ERROR, "address must be a string")
    try:
        spk = address_to_scriptpubkey(address).data
    except Exception:
        spk = None
    if spk is None or address_of(spk) != address:
        raise RPCFailure(-5, f"Invalid address: {address}" if address else "Invalid address")
    return spk


_OPNAMES = {0: "0", 0x4F: "-1", 0x61: "OP_NOP", 0x63: "OP_IF", 0x64: "OP_NOTIF", 0x67: "OP_ELSE",
            0x68: "OP_ENDIF", 0x69: "OP_VERIFY", 0x6A: "OP_RETURN", 0x73: "OP_IFDUP",
            0x75: "OP_DROP", 0x76: "OP_DUP", 0x82: "OP_SIZE", 0x87: "OP_EQUAL",
            0x88: "OP_EQUALVERIFY", 0x92: "OP_0NOTEQUAL", 0x93: "OP_ADD", 0x9A: "OP_BOOLAND",
            0x9B: "OP_BOOLOR", 0xA9: "OP_HASH160", 0xA8: "OP_SHA256", 0xAC: "OP_CHECKSIG",
            0xAD: "OP_CHECKSIGVERIFY", 0xAE: "OP_CHECKMULTISIG", 0xAF: "OP_CHECKMULTISIGVERIFY",
            0xB1: "OP_CHECKLOCKTIMEVERIFY", 0xB2: "OP_CHECKSEQUENCEVERIFY", 0xBA: "OP_CHECKSIGADD",
            0x74: "OP_DEPTH", 0x7C: "OP_SWAP", 0x6B: "OP_TOALTSTACK", 0x6C: "OP_FROMALTSTACK"}


def script_asm(script: bytes) -> str:
    """Human-readable script like Core's ScriptToAsmStr (small pushes as numbers)."""
    out, i = [], 0
    while i < len(script):
        op = script[i]
        i += 1
        if 1 <= op <= 0x4E:
            if op < 0x4C:
                n = op
            else:
                w = {0x4C: 1, 0x4D: 2, 0x4E: 4}[op]
                n = int.from_bytes(script[i:i + w], "little")
                i += w
            data = script[i:i + n]
            i += n
            if len(data) < n:
                out.append("[error]")
                break
            out.append(str(int.from_bytes(data, "little", signed=False)) if n <= 4 and
                       not (data and data[-1] & 0x80) else data.hex())
        elif 0x51 <= op <= 0x60:
            out.append(str(op - 0x50))
        else:
            out.append(_OPNAMES.get(op, f"OP_UNKNOWN{op}"))
    return " ".join(out)


def spk_json(spk: bytes, with_desc: bool = True) -> dict:
    """Core's `scriptPubKey` object: asm, desc, hex, address (if any), type."""
    from devnet.descriptors import add_checksum
    addr = address_of(spk)
    out = {"asm": script_asm(spk)}
    if with_desc:
        out["desc"] = add_checksum(f"addr({addr})" if addr else f"raw({spk.hex()})")
    out["hex"] = spk.hex()
    if addr:
        out["address"] = addr
    out["type"] = script_type(spk)
    return out


# ---- JSON ----------------------------------------------------------------------------

_DEC = re.compile(r'"\\u0000D([-0-9.E+]+)"')


def _mark(obj):
    if isinstance(obj, Decimal):
        return "\x00D" + format(obj, "f")
    if isinstance(obj, dict):
        return {k: _mark(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_mark(v) for v in obj]
    return obj


def dumps(obj) -> str:
    """JSON text where Decimal values are written as plain numbers (Core's amounts)."""
    return _DEC.sub(r"\1", json.dumps(_mark(obj)))
