"""Transactions and blocks as the index sees them, parsed from bitcoind's JSON
(`getblock` verbosity 2/3, `getrawtransaction` verbose) or from raw bytes (embit).

Values are integer satoshis; `prev_value` / `prev_script` are filled only when the
node gave prevouts (verbosity 3); `fee` when the node computed it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from embit.transaction import Transaction

from chain.rpc import btc_to_sat


@dataclass(frozen=True)
class TxIn:
    txid: str
    vout: int
    prev_value: int | None = None
    prev_script: bytes | None = None


@dataclass(frozen=True)
class TxOut:
    n: int
    value: int
    script: bytes


@dataclass
class ChainTx:
    txid: str
    inputs: list[TxIn]
    outputs: list[TxOut]
    coinbase: bool = False
    fee: int | None = None


@dataclass
class BlockData:
    hash: str
    height: int
    prev_hash: str
    time: int
    txs: list[ChainTx] = field(default_factory=list)
    has_prevouts: bool = False


def tx_from_json(tx: dict) -> ChainTx:
    inputs, coinbase = [], False
    for vin in tx.get("vin", []):
        if "coinbase" in vin:
            coinbase = True
            continue
        prev = vin.get("prevout")
        if prev is not None:
            inputs.append(TxIn(vin["txid"], int(vin["vout"]), btc_to_sat(prev["value"]),
                               bytes.fromhex(prev["scriptPubKey"]["hex"])))
        else:
            inputs.append(TxIn(vin["txid"], int(vin["vout"])))
    outputs = [TxOut(int(o["n"]), btc_to_sat(o["value"]), bytes.fromhex(o["scriptPubKey"]["hex"]))
               for o in tx.get("vout", [])]
    fee = btc_to_sat(tx["fee"]) if tx.get("fee") is not None else None
    return ChainTx(tx["txid"], inputs, outputs, coinbase, fee)


def block_from_json(block: dict) -> BlockData:
    txs = [tx_from_json(t) for t in block["tx"]]
    has_prevouts = any(i.prev_value is not None for t in txs for i in t.inputs)
    return BlockData(block["hash"], int(block["height"]), block.get("previousblockhash") or "0" * 64,
                     int(block["time"]), txs, has_prevouts)


def tx_from_raw(raw: bytes) -> ChainTx:
    """A transaction from its serialization (no prevouts, no fee)."""
    tx = Transaction.parse(raw)
    coinbase = len(tx.vin) == 1 and tx.vin[0].txid == b"\x00" * 32 and tx.vin[0].vout == 0xFFFFFFFF
    inputs = [] if coinbase else [TxIn(v.txid.hex(), v.vout) for v in tx.vin]
    outputs = [TxOut(n, o.value, o.script_pubkey.data) for n, o in enumerate(tx.vout)]
    return ChainTx(tx.txid().hex(), inputs, outputs, coinbase)
