"""Consensus and standardness checks for one transaction, with libbitcoinkernel scripts.

Every failure raises `TxRejected(code, reason)` with Core's code and reject reason:
-26 for consensus/policy rejections, -25 for missing or spent inputs. Units: satoshis,
weight units, virtual bytes, UNIX seconds.
"""
from __future__ import annotations

from typing import Callable

import pbk
from pbk.script import PrecomputedTransactionData

from devnet.chain import COINBASE_MATURITY, Coin
from devnet.encoding import MAX_MONEY, script_type
from devnet.errors import TxRejected, VERIFY_ERROR, VERIFY_REJECTED
from devnet.txutil import TxInfo

MEMPOOL_HEIGHT = 0x7FFFFFFF
MAX_STANDARD_TX_WEIGHT = 400_000
MIN_STANDARD_TX_NONWITNESS_SIZE = 65
MIN_RELAY_FEERATE = 1          # sat/vB
DUST_RELAY_FEERATE = 3         # sat/vB
LOCKTIME_THRESHOLD = 500_000_000
SEQUENCE_FINAL = 0xFFFFFFFF
SEQ_DISABLE = 1 << 31
SEQ_TYPE_TIME = 1 << 22
SEQ_MASK = 0xFFFF
SCRIPT_FLAGS = pbk.ScriptVerificationFlags.ALL   # consensus flags Core enforces everywhere

Lookup = Callable[[tuple[str, int]], "Coin | None"]


def reject(reason: str, detail: str = "", code: int = VERIFY_REJECTED):
    raise TxRejected(code, reason, detail)


def check_context_free(ti: TxInfo) -> None:
    """CheckTransaction: non-empty, value ranges, no duplicate inputs, not coinbase."""
    tx = ti.tx
    if not tx.vin:
        reject("bad-txns-vin-empty")
    if not tx.vout:
        reject("bad-txns-vout-empty")
    if ti.base_size * 4 > 4_000_000:
        reject("bad-txns-oversize")
    total = 0
    for out in tx.vout:
        if out.value < 0:
            reject("bad-txns-vout-negative")
        if out.value > MAX_MONEY:
            reject("bad-txns-vout-toolarge")
        total += out.value
        if total > MAX_MONEY:
            reject("bad-txns-txouttotal-toolarge")
    seen = set()
    for vin in tx.vin:
        key = (vin.txid, vin.vout)
        if key in seen:
            reject("bad-txns-inputs-duplicate")
        seen.add(key)
    if ti.is_coinbase:
        reject("coinbase")


def dust_threshold(spk: bytes) -> int:
    size = 8 + 1 + len(spk)
    witness = script_type(spk).startswith("witness") or script_type(spk) == "anchor"
    size += 67 if witness else 148
    return size * DUST_RELAY_FEERATE


def check_standard(ti: TxInfo) -> None:
    """IsStandardTx basics: version, size, scriptSig push-only, output types, dust."""
    tx = ti.tx
    if not 1 <= tx.version <= 3:
        reject("version")
    if ti.weight > MAX_STANDARD_TX_WEIGHT:
        reject("tx-size")
    if ti.base_size < MIN_STANDARD_TX_NONWITNESS_SIZE:
        reject("tx-size-small")
    for vin in tx.vin:
        sc = vin.script_sig.data
        if len(sc) > 1650:
            reject("scriptsig-size")
        if not _push_only(sc):
            reject("scriptsig-not-pushonly")
    op_returns = 0
    for out in tx.vout:
        spk = out.script_pubkey.data
        kind = script_type(spk)
        if kind == "nonstandard":
            reject("scriptpubkey")
        if kind == "multisig":
            reject("bare-multisig")
        if kind == "nulldata":
            op_returns += 1
        elif out.value < dust_threshold(spk):
            reject("dust")
    if op_returns > 1:
        reject("multi-op-return")


def _push_only(sc: bytes) -> bool:
    i = 0
    while i < len(sc):
        op = sc[i]
        i += 1
        if op > 0x60:
            return False
        if 1 <= op < 0x4C:
            i += op
        elif op in (0x4C, 0x4D, 0x4E):
            w = {0x4C: 1, 0x4D: 2, 0x4E: 4}[op]
            i += w + int.from_bytes(sc[i:i + w], "little")
    return i == len(sc)


def is_final(ti: TxInfo, height: int, block_time: int) -> bool:
    """IsFinalTx for a block at `height` whose locktime cutoff is `block_time` (MTP)."""
    lt = ti.tx.locktime
    if lt == 0:
        return True
    if lt < (height if lt < LOCKTIME_THRESHOLD else block_time):
        return True
    return all(v.sequence == SEQUENCE_FINAL for v in ti.tx.vin)


def sequence_locks_ok(ti: TxInfo, coins: list[Coin], height: int,
                      prev_mtp: int, mtp_at: Callable[[int], int]) -> bool:
    """BIP68: every input's relative lock is satisfied by a block at `height` whose
    previous block has median-time-past `prev_mtp`. Mempool coins count as `height`."""
    if ti.tx.version < 2:
        return True
    min_height, min_time = -1, -1
    for vin, coin in zip(ti.tx.vin, coins):
        seq = vin.sequence
        if seq & SEQ_DISABLE:
            continue
        coin_height = height if coin.height == MEMPOOL_HEIGHT else coin.height
        if seq & SEQ_TYPE_TIME:
            coin_time = mtp_at(max(coin_height - 1, 0))
            min_time = max(min_time, coin_time + ((seq & SEQ_MASK) << 9) - 1)
        else:
            min_height = max(min_height, coin_height + (seq & SEQ_MASK) - 1)
    return min_height < height and min_time < prev_mtp


def verify_scripts(ti: TxInfo, coins: list[Coin]) -> str | None:
    """Verify every input with libbitcoinkernel; None when all pass, else a reason."""
    try:
        ktx = pbk.Transaction(ti.raw)
        outs = [pbk.TransactionOutput(pbk.ScriptPubkey(c.spk), c.value) for c in coins]
        pre = PrecomputedTransactionData(ktx, outs)
    except Exception as exc:  # the kernel refusing to parse is a script failure too
        return f"mandatory-script-verify-flag-failed (kernel: {exc})"
    for i, coin in enumerate(coins):
        try:
            ok = pbk.ScriptPubkey(coin.spk).verify(coin.value, ktx, pre, i, SCRIPT_FLAGS)
        except pbk.ScriptVerifyException as exc:
            return f"mandatory-script-verify-flag-failed (input {i}: {exc})"
        if not ok:
            return (f"mandatory-script-verify-flag-failed (Script evaluated without error "
                    f"but finished with a false/empty top stack element), input {i}")
    return None


def check_inputs(ti: TxInfo, lookup: Lookup, height: int, prev_mtp: int,
                 mtp_at: Callable[[int], int], verify: bool = True) -> tuple[int, list[Coin]]:
    """Contextual checks against the coins view; returns (fee, spent coins).

    Order follows Core: missing inputs (-25), premature coinbase spend, value
    conservation, BIP68 finality, then script verification.
    """
    coins = []
    for vin in ti.tx.vin:
        coin = lookup((vin.txid.hex(), vin.vout))
        if coin is None:
            reject("bad-txns-inputs-missingorspent", code=VERIFY_ERROR)
        coins.append(coin)
    if not sequence_locks_ok(ti, coins, height, prev_mtp, mtp_at):
        reject("non-BIP68-final")
    value_in = 0
    for coin in coins:
        if coin.coinbase and coin.height != MEMPOOL_HEIGHT and height - coin.height < COINBASE_MATURITY:
            reject("bad-txns-premature-spend-of-coinbase",
                   f"tried to spend coinbase at depth {height - coin.height}")
        value_in += coin.value
    value_out = sum(o.value for o in ti.tx.vout)
    if value_in < value_out:
        reject("bad-txns-in-belowout", f"value in ({value_in / 1e8:.8f}) < value out ({value_out / 1e8:.8f})")
    if verify:
        failure = verify_scripts(ti, coins)
        if failure:
            raise TxRejected(VERIFY_REJECTED, failure)
    return value_in - value_out, coins
