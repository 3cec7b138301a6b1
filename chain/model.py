"""Tables of the chain index: the scripts every account watches, the blocks the follower
has applied, the account's coins and transactions, the mempool the follower knows, and
restore jobs.

Writers: account creation writes `chain_branches` + the first `chain_scripts`
(`chain.scripts.register_account`); the block follower (`chain.follower`) writes
everything else; the spends package writes only the reservation columns of
`chain_coins` (`reserved_by`, `reserved_until`). Amounts are integer satoshis, heights
count from genesis = 0, hashes and txids are lower-case hex in RPC byte order.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, UTCDateTime

GAP_LIMIT = 20               # unused derived scripts kept beyond the highest used, per branch
DEEP_CONFIRMATIONS = 6       # confirmed → deep
RECEIVE, CHANGE = 0, 1       # branches of the account descriptors (/0/* and /1/*)
TX_STATES = ("mempool", "confirmed", "deep", "conflicted", "replaced")
LIVE_TX_STATES = ("mempool", "confirmed", "deep")
RESTORE_STATES = ("pending", "running", "done", "failed")

_BIGID = BigInteger().with_variant(Integer, "sqlite")


class ScriptBranch(Base):
    """One derivation branch of an account: its descriptor and how far it is derived.

    `derived_to` is the highest index whose script is in `chain_scripts` (-1: none);
    `highest_used` the highest index that ever received a payment (None: never);
    invariant for ranged branches: derived_to >= (highest_used or -1) + GAP_LIMIT.
    `next_index` is the next index handed out by `chain.scripts.take_index` (change
    outputs); the receive branch's issued addresses stay in cosigner's
    `issued_addresses` / `accounts.next_receive_index`.
    """
    __tablename__ = "chain_branches"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    branch: Mapped[int] = mapped_column(Integer, primary_key=True)
    descriptor: Mapped[str] = mapped_column(Text, nullable=False)      # with checksum; addr(...) lines if not ranged
    ranged: Mapped[bool] = mapped_column(Boolean, nullable=False)
    derived_to: Mapped[int] = mapped_column(Integer, nullable=False, default=-1)
    highest_used: Mapped[int | None] = mapped_column(Integer)
    next_index: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class WatchedScript(Base):
    """A scriptPubKey some account watches. One row per script for every account: the
    follower joins each block's outputs against this table in one set query."""
    __tablename__ = "chain_scripts"
    __table_args__ = (UniqueConstraint("account_id", "branch", "index", name="uq_chain_scripts_slot"),)

    script: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False)
    branch: Mapped[int] = mapped_column(Integer, nullable=False)
    index: Mapped[int] = mapped_column(Integer, nullable=False)
    used: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class ChainBlock(Base):
    """A block of the best chain as the follower applied it. The row with the highest
    height is the follower's tip; a reorg deletes rows down to the fork point."""
    __tablename__ = "chain_blocks"

    height: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    time: Mapped[int] = mapped_column(BigInteger, nullable=False)           # block header time, Unix seconds
    applied_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class Coin(Base):
    """An output paying one of an account's scripts.

    Unconfirmed while `block_hash` is None (created by a mempool transaction). Spent
    once `spent_by_txid` is set (`spent_height` None while the spender is unconfirmed).
    Reserved for a spend being built while `reserved_by` is set and `reserved_until`
    is in the future (written only by the spends package).
    """
    __tablename__ = "chain_coins"
    __table_args__ = (Index("ix_chain_coins_account_unspent", "account_id", "spent_by_txid"),)

    txid: Mapped[str] = mapped_column(String(64), primary_key=True)
    vout: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False)
    amount_sat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    script: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    branch: Mapped[int] = mapped_column(Integer, nullable=False)
    index: Mapped[int] = mapped_column(Integer, nullable=False)
    coinbase: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    own_change: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)  # created by a tx spending our coins
    block_height: Mapped[int | None] = mapped_column(Integer)
    block_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    spent_by_txid: Mapped[str | None] = mapped_column(String(64), index=True)
    spent_height: Mapped[int | None] = mapped_column(Integer)
    spent_block_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    reserved_by: Mapped[str | None] = mapped_column(String(40), index=True)      # spend id
    reserved_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)

    @property
    def outpoint(self) -> str:
        return f"{self.txid}:{self.vout}"


class AccountTx(Base):
    """A transaction touching an account (pays one of its scripts or spends one of its
    coins). `net_sat` = received_sat − sent_sat; `fee_sat` is set when the account
    funded it (some input is the account's) and the fee is known."""
    __tablename__ = "chain_account_txs"
    __table_args__ = (UniqueConstraint("account_id", "txid", name="uq_chain_account_txs_tx"),
                      Index("ix_chain_account_txs_history", "account_id", "block_height", "block_pos"),
                      Index("ix_chain_account_txs_state", "state", "block_height"))

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False)
    txid: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False)           # TX_STATES
    block_height: Mapped[int | None] = mapped_column(Integer)
    block_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    block_pos: Mapped[int | None] = mapped_column(Integer)                   # position in the block
    block_time: Mapped[int | None] = mapped_column(BigInteger)
    received_sat: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    sent_sat: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    net_sat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fee_sat: Mapped[int | None] = mapped_column(BigInteger)
    replaced_by: Mapped[str | None] = mapped_column(String(64))
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class MempoolTx(Base):
    """A mempool transaction the follower has already looked at (relevant or not), so
    a pass fetches only new ones. Deleted when it leaves the mempool."""
    __tablename__ = "chain_mempool"

    txid: Mapped[str] = mapped_column(String(64), primary_key=True)
    relevant: Mapped[bool] = mapped_column(Boolean, nullable=False)
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class MempoolFeed(Base):
    """Core's `sequence` notifications about mempool transactions as the ZMQ listener
    received them (`chain.feed.FeedWriter`), kept until a follower pass has applied them.
    `kind`: `A` added / `R` removed for a non-block reason (with txid and Core's mempool
    sequence), or `G`: the listener started, stopped or lost messages, so the next pass
    takes a full `getrawmempool` snapshot instead."""
    __tablename__ = "chain_mempool_feed"
    # ids only ever grow (the cursor compares them): SQLite would reuse them once deleted
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True, autoincrement=True)
    listener: Mapped[str] = mapped_column(String(32), nullable=False)
    kind: Mapped[str] = mapped_column(String(1), nullable=False)
    txid: Mapped[str | None] = mapped_column(String(64))
    mempool_seq: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class MempoolCursor(Base):
    """Where the follower's mempool view stands (one row, id 1): the mempool sequence and
    time of its last full snapshot, the listener run whose notifications continue that
    snapshot (None: no listener, every pass takes a snapshot) and the last feed row
    applied."""
    __tablename__ = "chain_mempool_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    listener: Mapped[str | None] = mapped_column(String(32))
    feed_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    mempool_seq: Mapped[int | None] = mapped_column(BigInteger)
    synced_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class Restore(Base):
    """Indexing an account's past (`birthday` given): which blocks, how far, how."""
    __tablename__ = "chain_restores"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False)           # RESTORE_STATES
    method: Mapped[str | None] = mapped_column(String(16))                   # scanblocks | scan
    start_height: Mapped[int | None] = mapped_column(Integer)
    stop_height: Mapped[int | None] = mapped_column(Integer)
    next_height: Mapped[int | None] = mapped_column(Integer)                 # progress: first height not yet done
    blocks_found: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
