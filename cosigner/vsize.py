"""Exact transaction sizes for the account's script shapes. Pure.

Units: sizes in bytes, weights in weight units (WU), vsize in virtual bytes
(`ceil(weight / 4)`, as Bitcoin Core's GetVirtualTransactionSize without the sigop term,
which a P2WSH multisig never reaches). Fee rates are integer satoshis per 1,000 vB
(sat/kvB, Core's CFeeRate unit), so every fee is exact integer arithmetic rounded up
like `CFeeRate::GetFee`.

A signature is counted at SIGNATURE_BYTES = 72 (DER with a 33-byte R and a 32-byte S,
plus the sighash byte): the size Bitcoin Core's dummy signer assumes for a signer it
cannot make grind low-R, so an estimate is never below the signed transaction — a
ground signature (embit, Core) is 71 bytes, i.e. at most 0.25 vB per signature less.

Witness stacks (see cosigner/finalize.py):
- `multisig`: `["", sig, sig, witness_script]` — sortedmulti(2,…) and the decaying
  template's multi branch;
- `timelock`: `[sig_r, pubkey_r, "", "", "", witness_script]` — the decaying template's
  `and_v(v:pkh(R'), older(N))` branch.
"""
from __future__ import annotations

SIGNATURE_BYTES = 72
PUBKEY_BYTES = 33
INPUT_BASE_BYTES = 32 + 4 + 1 + 4          # outpoint, empty scriptSig length, nSequence
TX_BASE_BYTES = 4 + 4                      # version, locktime
SEGWIT_MARKER_WU = 2                       # marker + flag, witness bytes
P2WSH_SCRIPT_BYTES = 34
WITNESS_SCALE = 4
PATHS = ("multisig", "timelock")


def varint_len(n: int) -> int:
    """Bytes of Bitcoin's CompactSize encoding of `n`."""
    return 1 if n < 0xFD else 3 if n <= 0xFFFF else 5 if n <= 0xFFFFFFFF else 9


def _item(n: int) -> int:
    return varint_len(n) + n


def witness_bytes(witness_script_len: int, path: str = "multisig") -> int:
    """Serialized witness of one input (item count included), in bytes = WU."""
    if path == "multisig":
        items = [0, SIGNATURE_BYTES, SIGNATURE_BYTES, witness_script_len]
    elif path == "timelock":
        items = [SIGNATURE_BYTES, PUBKEY_BYTES, 0, 0, 0, witness_script_len]
    else:
        raise ValueError(f"path must be one of {PATHS}")
    return varint_len(len(items)) + sum(_item(n) for n in items)


def input_weight(witness_script_len: int, path: str = "multisig") -> int:
    """Weight of one P2WSH input spent along `path`: 4 × 41 non-witness bytes + witness."""
    return WITNESS_SCALE * INPUT_BASE_BYTES + witness_bytes(witness_script_len, path)


def output_bytes(script_len: int) -> int:
    """Serialized output: 8-byte amount, script length, script."""
    return 8 + _item(script_len)


def tx_weight(input_weights: list[int] | tuple[int, ...], output_script_lens: list[int] | tuple[int, ...]) -> int:
    """Weight of a segwit transaction with these inputs (each from `input_weight`) and
    outputs (scriptPubKey lengths). Exact for the witness sizes given."""
    n_in, n_out = len(input_weights), len(output_script_lens)
    base = TX_BASE_BYTES + varint_len(n_in) + varint_len(n_out) + sum(output_bytes(s) for s in output_script_lens)
    return WITNESS_SCALE * base + SEGWIT_MARKER_WU + sum(input_weights)


def vsize(weight: int) -> int:
    """Virtual size in vB (rounded up)."""
    return (weight + WITNESS_SCALE - 1) // WITNESS_SCALE


def fee(vbytes: int, rate_kvb: int) -> int:
    """Fee in sat for `vbytes` at `rate_kvb` sat/kvB, rounded up (CFeeRate::GetFee)."""
    return (vbytes * rate_kvb + 999) // 1000


def weight_fee(weight: int, rate_kvb: int) -> int:
    """Fee in sat for a part of a transaction given in WU (an input, an output), rounded
    up: the sum over parts is never below the fee of the whole."""
    return (weight * rate_kvb + 3999) // 4000


def rate_to_kvb(sat_per_vb) -> int:
    """sat/vB (int, float, Decimal or str) → integer sat/kvB, to the millisatoshi per vB."""
    from decimal import ROUND_HALF_UP, Decimal
    return int((Decimal(str(sat_per_vb)) * 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def kvb_to_rate(rate_kvb: int) -> float:
    """sat/kvB → sat/vB for display."""
    return rate_kvb / 1000
