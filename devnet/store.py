"""SQLite persistence: the durable log devnet replays on start.

Durable: blocks of the active chain (raw), side-branch blocks (raw), invalid/precious
flags, the mempool (raw txs), wallets and their descriptors, per-wallet
transaction flags. Everything else (UTXO set, wallet balances) is rebuilt in memory from
those. A block and the mempool rows it clears are written in ONE transaction, so a
process killed mid-block leaves either the whole block or none of it.
Not thread-safe by itself: the node calls it under its state lock.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (height INTEGER PRIMARY KEY, hash TEXT NOT NULL, raw BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS mempool (txid TEXT PRIMARY KEY, raw BLOB NOT NULL, time INTEGER NOT NULL,
                                    seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS wallets (name TEXT PRIMARY KEY, meta TEXT NOT NULL,
                                    load_on_startup INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS descriptors (wallet TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,
                                        seq INTEGER NOT NULL, PRIMARY KEY (wallet, id));
CREATE TABLE IF NOT EXISTS side_blocks (hash TEXT PRIMARY KEY, raw BLOB NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS block_flags (hash TEXT PRIMARY KEY, invalid INTEGER NOT NULL DEFAULT 0,
                                        seq INTEGER);
CREATE TABLE IF NOT EXISTS wallet_txflags (wallet TEXT NOT NULL, txid TEXT NOT NULL, data TEXT NOT NULL,
                                           PRIMARY KEY (wallet, txid));
"""


class Store:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM mempool").fetchone()[0]

    def close(self) -> None:
        self.db.close()

    # ---- chain ----------------------------------------------------------------------
    def blocks(self):
        """Yield (height, raw) in height order."""
        yield from self.db.execute("SELECT height, raw FROM blocks ORDER BY height")

    def add_block(self, height: int, block_hash: str, raw: bytes, mined_txids: list[str],
                  evicted_txids: list[str]) -> None:
        """Write a block and clear its mempool rows atomically."""
        with self._tx():
            self.db.execute("INSERT INTO blocks VALUES (?, ?, ?)", (height, block_hash, raw))
            self.db.execute("DELETE FROM side_blocks WHERE hash = ?", (block_hash,))
            self.db.executemany("DELETE FROM mempool WHERE txid = ?",
                                [(t,) for t in mined_txids + evicted_txids])

    def disconnect_block(self, height: int, block_hash: str, raw: bytes, seq: int) -> None:
        """The active chain's tip at `height` became a side-branch block (atomic)."""
        with self._tx():
            self.db.execute("DELETE FROM blocks WHERE height = ? AND hash = ?", (height, block_hash))
            self.db.execute("INSERT OR REPLACE INTO side_blocks VALUES (?, ?, ?)", (block_hash, raw, seq))

    def add_side_block(self, block_hash: str, raw: bytes, seq: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO side_blocks VALUES (?, ?, ?)", (block_hash, raw, seq))

    def side_blocks(self):
        """Yield (hash, raw) of side-branch blocks, oldest first."""
        yield from self.db.execute("SELECT hash, raw FROM side_blocks ORDER BY seq")

    def set_flags(self, block_hash: str, *, invalid: bool | None = None, seq: int | None = None) -> None:
        row = self.db.execute("SELECT invalid, seq FROM block_flags WHERE hash = ?", (block_hash,)).fetchone()
        inv = int(invalid) if invalid is not None else (row[0] if row else 0)
        sq = seq if seq is not None else (row[1] if row else None)
        self.db.execute("INSERT OR REPLACE INTO block_flags VALUES (?, ?, ?)", (block_hash, inv, sq))

    def flags(self) -> dict[str, tuple[bool, int | None]]:
        return {h: (bool(i), q) for h, i, q in self.db.execute("SELECT hash, invalid, seq FROM block_flags")}

    # ---- mempool --------------------------------------------------------------------
    def mempool(self):
        yield from self.db.execute("SELECT txid, raw, time FROM mempool ORDER BY seq")

    def mempool_add(self, txid: str, raw: bytes, when: int, removed: list[str]) -> None:
        self._seq += 1
        with self._tx():
            self.db.executemany("DELETE FROM mempool WHERE txid = ?", [(t,) for t in removed])
            self.db.execute("INSERT OR REPLACE INTO mempool VALUES (?, ?, ?, ?)",
                            (txid, raw, when, self._seq))

    def mempool_remove(self, txids: list[str]) -> None:
        with self._tx():
            self.db.executemany("DELETE FROM mempool WHERE txid = ?", [(t,) for t in txids])

    # ---- wallets --------------------------------------------------------------------
    def wallet_names(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM wallets ORDER BY name")]

    def startup_wallets(self) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT name FROM wallets WHERE load_on_startup = 1 ORDER BY name")]

    def set_load_on_startup(self, name: str, flag: bool) -> None:
        self.db.execute("UPDATE wallets SET load_on_startup = ? WHERE name = ?", (int(flag), name))

    def create_wallet(self, name: str, meta: dict, load_on_startup: bool) -> None:
        self.db.execute("INSERT INTO wallets VALUES (?, ?, ?)", (name, json.dumps(meta), int(load_on_startup)))

    def wallet_meta(self, name: str) -> dict | None:
        row = self.db.execute("SELECT meta FROM wallets WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def descriptors(self, wallet: str) -> list[dict]:
        return [json.loads(r[0]) for r in self.db.execute(
            "SELECT data FROM descriptors WHERE wallet = ? ORDER BY seq", (wallet,))]

    def put_descriptors(self, wallet: str, items: list[dict]) -> None:
        """Insert or update descriptor records (keyed by their 'id') in one transaction."""
        with self._tx():
            for d in items:
                row = self.db.execute("SELECT seq FROM descriptors WHERE wallet = ? AND id = ?",
                                      (wallet, d["id"])).fetchone()
                seq = row[0] if row else self.db.execute(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM descriptors").fetchone()[0]
                self.db.execute("INSERT OR REPLACE INTO descriptors VALUES (?, ?, ?, ?)",
                                (wallet, d["id"], json.dumps(d), seq))

    def txflags(self, wallet: str) -> dict[str, dict]:
        return {r[0]: json.loads(r[1]) for r in self.db.execute(
            "SELECT txid, data FROM wallet_txflags WHERE wallet = ?", (wallet,))}

    def put_txflags(self, wallet: str, txid: str, data: dict) -> None:
        self.db.execute("INSERT OR REPLACE INTO wallet_txflags VALUES (?, ?, ?)",
                        (wallet, txid, json.dumps(data)))

    def _tx(self):
        return _Transaction(self.db)


class _Transaction:
    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *_):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
