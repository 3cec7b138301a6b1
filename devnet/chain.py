"""Blocks, headers and the UTXO set of a regtest chain, with its side branches.

Units: values in satoshis, times in UNIX seconds, heights from 0 (genesis).
Blocks are built by this node (`build_block`) and applied with `connect`, after the
caller has validated their transactions and persisted the block. `disconnect_tip`
undoes the tip with the undo data `connect` recorded (the coins each transaction
spent), so reorgs (devnet.reorg: invalidateblock / reconsiderblock / preciousblock)
move the active chain between branches like Core does. `by_hash` knows every block,
on the active chain or not; `blocks` is the active chain.
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

from embit.script import Script, Witness
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from devnet.encoding import COIN, sha256d, ser_compact
from devnet.txutil import TxInfo, info

REGTEST_BITS = 0x207FFFFF
POW_TARGET = 0x7FFFFF << (8 * (0x20 - 3))
HALVING_INTERVAL = 150
COINBASE_MATURITY = 100
MAX_BLOCK_WEIGHT = 4_000_000
WITNESS_COMMITMENT_HEADER = b"\xaa\x21\xa9\xed"

GENESIS_SCRIPT_SIG = bytes.fromhex(
    "04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e"
    "206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73")
GENESIS_SPK = bytes.fromhex(
    "4104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f3"
    "5504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac")


def subsidy(height: int) -> int:
    halvings = height // HALVING_INTERVAL
    return 0 if halvings >= 64 else (50 * COIN) >> halvings


def merkle_root(hashes: list[bytes]) -> bytes:
    """Merkle root over internal-order hashes (Core's ComputeMerkleRoot)."""
    if not hashes:
        return b"\x00" * 32
    level = list(hashes)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


@dataclass
class Coin:
    value: int
    spk: bytes
    height: int
    coinbase: bool


@dataclass
class Block:
    version: int
    prev: bytes          # internal byte order
    merkle: bytes
    time: int
    bits: int
    nonce: int
    txs: list[TxInfo] = field(default_factory=list)

    def header(self) -> bytes:
        return (self.version.to_bytes(4, "little") + self.prev + self.merkle +
                self.time.to_bytes(4, "little") + self.bits.to_bytes(4, "little") +
                self.nonce.to_bytes(4, "little"))

    @property
    def hash(self) -> str:
        return sha256d(self.header())[::-1].hex()

    def serialize(self) -> bytes:
        return self.header() + ser_compact(len(self.txs)) + b"".join(t.raw for t in self.txs)

    @property
    def weight(self) -> int:
        return sum(t.weight for t in self.txs) + (80 + len(ser_compact(len(self.txs)))) * 4

    def solve(self) -> None:
        """Grind the nonce until the header hash meets regtest's trivial target."""
        while int.from_bytes(sha256d(self.header())[::-1], "big") > POW_TARGET:
            self.nonce += 1

    @classmethod
    def parse(cls, raw: bytes) -> "Block":
        h = raw[:80]
        blk = cls(int.from_bytes(h[:4], "little"), h[4:36], h[36:68],
                  int.from_bytes(h[68:72], "little"), int.from_bytes(h[72:76], "little"),
                  int.from_bytes(h[76:80], "little"))
        stream = io.BytesIO(raw[80:])
        from embit.compact import read_from as read_compact
        n = read_compact(stream)
        for _ in range(n):
            blk.txs.append(info(Transaction.read_from(stream)))
        return blk


def genesis() -> Block:
    cb = Transaction(version=1, vin=[TransactionInput(b"\x00" * 32, 0xFFFFFFFF, Script(GENESIS_SCRIPT_SIG))],
                     vout=[TransactionOutput(50 * COIN, Script(GENESIS_SPK))], locktime=0)
    ti = info(cb)
    blk = Block(1, b"\x00" * 32, bytes.fromhex(ti.txid)[::-1], 1296688602, REGTEST_BITS, 2, [ti])
    return blk


def bip34_push(height: int) -> bytes:
    if height == 0:
        return b"\x00"
    if 1 <= height <= 16:
        return bytes([0x50 + height])
    n = height.to_bytes((height.bit_length() + 8) // 8, "little")
    return bytes([len(n)]) + n


def witness_commitment(txs: list[TxInfo]) -> bytes:
    """Commitment over wtxids (coinbase's as zero) with a zero witness reserved value."""
    leaves = [b"\x00" * 32] + [bytes.fromhex(t.wtxid)[::-1] for t in txs]
    return sha256d(merkle_root(leaves) + b"\x00" * 32)


@dataclass
class BlockIndex:
    hash: str
    height: int
    block: Block
    mtp: int
    chainwork: int
    seq: int = 0          # Core's nSequenceId: lower wins between equal-work tips


UndoData = list[list[tuple[tuple[str, int], Coin]]]   # per transaction, the coins it spent


class ChainState:
    """The active chain, its UTXO set and a txid → (height, position) index."""

    def __init__(self):
        self.blocks: list[BlockIndex] = []
        self.by_hash: dict[str, BlockIndex] = {}
        self.utxos: dict[tuple[str, int], Coin] = {}
        self.txindex: dict[str, tuple[int, int]] = {}
        self.undo: dict[str, UndoData] = {}
        self.next_seq = 1
        self.connect(genesis(), genesis_block=True)

    @property
    def height(self) -> int:
        return len(self.blocks) - 1

    @property
    def tip(self) -> BlockIndex:
        return self.blocks[-1]

    def median_time_past(self, height: int | None = None) -> int:
        h = self.height if height is None else height
        times = sorted(self.blocks[i].block.time for i in range(max(0, h - 10), h + 1))
        return times[len(times) // 2]

    def get_tx(self, txid: str) -> tuple[TxInfo, BlockIndex] | None:
        loc = self.txindex.get(txid)
        if loc is None:
            return None
        bi = self.blocks[loc[0]]
        return bi.block.txs[loc[1]], bi

    def build_block(self, txs: list[TxInfo], coinbase_spk: bytes, fees: int,
                    now: int | None = None) -> Block:
        """A solved block on the tip paying subsidy+fees to `coinbase_spk`."""
        height = self.height + 1
        cb_vin = TransactionInput(b"\x00" * 32, 0xFFFFFFFF, Script(bip34_push(height) + b"\x00"),
                                  sequence=0xFFFFFFFF, witness=Witness([b"\x00" * 32]))
        cb = Transaction(version=2, vin=[cb_vin], vout=[
            TransactionOutput(subsidy(height) + fees, Script(coinbase_spk)),
            TransactionOutput(0, Script(b"\x6a\x24" + WITNESS_COMMITMENT_HEADER + witness_commitment(txs))),
        ], locktime=0)
        all_txs = [info(cb)] + list(txs)
        block_time = max(int(now if now is not None else time.time()), self.median_time_past() + 1)
        blk = Block(0x20000000, bytes.fromhex(self.tip.hash)[::-1],
                    merkle_root([bytes.fromhex(t.txid)[::-1] for t in all_txs]),
                    block_time, REGTEST_BITS, 0, all_txs)
        blk.solve()
        return blk

    def is_active(self, bi: BlockIndex) -> bool:
        return bi.height <= self.height and self.blocks[bi.height] is bi

    def connect(self, blk: Block, genesis_block: bool = False) -> BlockIndex:
        """Apply an already validated (and persisted) block to the UTXO set, on the tip."""
        height = len(self.blocks)
        bi = self.by_hash.get(blk.hash)
        if bi is None:
            bi = BlockIndex(blk.hash, height, blk, 0, (self.tip.chainwork if self.blocks else 0) + 2, self.next_seq)
            self.next_seq += 1
        self.blocks.append(bi)
        self.by_hash[bi.hash] = bi
        bi.mtp = self.median_time_past(height)
        undo: UndoData = []
        for pos, t in enumerate(blk.txs):
            self.txindex[t.txid] = (height, pos)
            spent = []
            undo.append(spent)
            if genesis_block:
                continue
            if pos:
                for vin in t.tx.vin:
                    op = (vin.txid.hex(), vin.vout)
                    coin = self.utxos.pop(op, None)
                    if coin is not None:
                        spent.append((op, coin))
            for n, out in enumerate(t.tx.vout):
                spk = out.script_pubkey.data
                if spk[:1] == b"\x6a":
                    continue
                self.utxos[(t.txid, n)] = Coin(out.value, spk, height, pos == 0)
        self.undo[bi.hash] = undo
        return bi

    def disconnect_tip(self) -> BlockIndex:
        """Undo the tip block: its outputs leave the UTXO set, the coins it spent come
        back. The block stays known in `by_hash` (a side branch now)."""
        bi = self.blocks[-1]
        if bi.height == 0:
            raise ValueError("cannot disconnect the genesis block")
        undo = self.undo.get(bi.hash, [])
        for pos in range(len(bi.block.txs) - 1, -1, -1):
            t = bi.block.txs[pos]
            for n in range(len(t.tx.vout)):
                self.utxos.pop((t.txid, n), None)
            if self.txindex.get(t.txid) == (bi.height, pos):
                del self.txindex[t.txid]
            for op, coin in (undo[pos] if pos < len(undo) else []):
                self.utxos[op] = coin
        self.blocks.pop()
        return bi

    def add_side(self, blk: Block) -> BlockIndex:
        """Know a block whose parent is known, without connecting it."""
        parent = self.by_hash[blk.prev[::-1].hex()]
        bi = BlockIndex(blk.hash, parent.height + 1, blk, parent.mtp, parent.chainwork + 2, self.next_seq)
        self.next_seq += 1
        self.by_hash[bi.hash] = bi
        return bi

    def parent(self, bi: BlockIndex) -> BlockIndex | None:
        return self.by_hash.get(bi.block.prev[::-1].hex()) if bi.height else None
