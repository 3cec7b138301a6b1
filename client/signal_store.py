"""python-axolotl's four stores (identity, prekeys, signed prekeys, sessions) over one
local SQLite file, so a reference client keeps its Signal state across runs.

python-axolotl ships in-memory stores only (in its tests). This file holds private keys:
it is created with mode 0600.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path

from axolotl.identitykey import IdentityKey
from axolotl.identitykeypair import IdentityKeyPair
from axolotl.invalidkeyidexception import InvalidKeyIdException
from axolotl.state.axolotlstore import AxolotlStore
from axolotl.state.prekeyrecord import PreKeyRecord
from axolotl.state.sessionrecord import SessionRecord
from axolotl.state.signedprekeyrecord import SignedPreKeyRecord
from axolotl.util.keyhelper import KeyHelper

LAST_RESORT_KEY_ID = 0xFFFFFF   # never removed after use (it is served when the pool is empty)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS local_identity (id INTEGER PRIMARY KEY CHECK (id = 1),
    registration_id INTEGER NOT NULL, keypair BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS identities (recipient_id TEXT PRIMARY KEY, identity_key BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS pinned (recipient_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS prekeys (id INTEGER PRIMARY KEY, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS signed_prekeys (id INTEGER PRIMARY KEY, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (recipient_id TEXT NOT NULL, device_id INTEGER NOT NULL,
    record BLOB NOT NULL, PRIMARY KEY (recipient_id, device_id));
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS inbox (guid TEXT PRIMARY KEY, sender TEXT NOT NULL, received_at TEXT NOT NULL,
    plaintext BLOB NOT NULL);
"""


class SqliteSignalStore(AxolotlStore):
    """An AxolotlStore in a SQLite file. `SqliteSignalStore.open(path)` creates the
    identity on first use. Thread-safe (one connection, one lock)."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._db.executescript(_SCHEMA)
        if self._one("SELECT 1 FROM local_identity") is None:
            pair = KeyHelper.generateIdentityKeyPair()
            self._exec("INSERT INTO local_identity VALUES (1, ?, ?)",
                       (KeyHelper.generateRegistrationId(), pair.serialize()))

    # -- helpers ---------------------------------------------------------------
    def _exec(self, sql: str, params=()):
        with self._lock:
            return self._db.execute(sql, params)

    def _one(self, sql: str, params=()):
        with self._lock:
            return self._db.execute(sql, params).fetchone()

    def close(self) -> None:
        self._db.close()

    def next_id(self, name: str, count: int = 1, start: int = 1) -> int:
        """Reserve `count` consecutive ids from counter `name`; return the first."""
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
            first = row[0] if row else start
            self._db.execute("INSERT OR REPLACE INTO counters VALUES (?, ?)", (name, first + count))
            return first

    # -- IdentityKeyStore ----------------------------------------------------------
    def getIdentityKeyPair(self):
        return IdentityKeyPair(serialized=self._one("SELECT keypair FROM local_identity")[0])

    def getLocalRegistrationId(self):
        return self._one("SELECT registration_id FROM local_identity")[0]

    def saveIdentity(self, recepientId, identityKey):
        self._exec("INSERT OR REPLACE INTO identities VALUES (?, ?)", (recepientId, identityKey.serialize()))

    def isTrustedIdentity(self, recepientId, identityKey):
        """Trust on first use, or the key pinned from a QR code; a changed key is refused."""
        key = identityKey.serialize()
        pinned = self.pinned(recepientId)
        if pinned is not None and hashlib.sha256(key).hexdigest() != pinned:
            return False
        known = self.loadIdentity(recepientId)
        return known is None or known.serialize() == key

    def loadIdentity(self, recipient_id: str):
        row = self._one("SELECT identity_key FROM identities WHERE recipient_id = ?", (recipient_id,))
        return IdentityKey(row[0], 0) if row else None

    def pin(self, recipient_id: str, fingerprint: str) -> None:
        self._exec("INSERT OR REPLACE INTO pinned VALUES (?, ?)", (recipient_id, fingerprint))

    def pinned(self, recipient_id: str) -> str | None:
        row = self._one("SELECT fingerprint FROM pinned WHERE recipient_id = ?", (recipient_id,))
        return row[0] if row else None

    # -- PreKeyStore ---------------------------------------------------------------
    def loadPreKey(self, preKeyId):
        row = self._one("SELECT record FROM prekeys WHERE id = ?", (preKeyId,))
        if row is None:
            raise InvalidKeyIdException("No such prekeyRecord!")
        return PreKeyRecord(serialized=row[0])

    def storePreKey(self, preKeyId, preKeyRecord):
        self._exec("INSERT OR REPLACE INTO prekeys VALUES (?, ?)", (preKeyId, preKeyRecord.serialize()))

    def containsPreKey(self, preKeyId):
        return self._one("SELECT 1 FROM prekeys WHERE id = ?", (preKeyId,)) is not None

    def removePreKey(self, preKeyId):
        if preKeyId != LAST_RESORT_KEY_ID:
            self._exec("DELETE FROM prekeys WHERE id = ?", (preKeyId,))

    # -- SignedPreKeyStore -----------------------------------------------------------
    def loadSignedPreKey(self, signedPreKeyId):
        row = self._one("SELECT record FROM signed_prekeys WHERE id = ?", (signedPreKeyId,))
        if row is None:
            raise InvalidKeyIdException("No such signedprekeyrecord! %s " % signedPreKeyId)
        return SignedPreKeyRecord(serialized=row[0])

    def loadSignedPreKeys(self):
        with self._lock:
            rows = self._db.execute("SELECT record FROM signed_prekeys ORDER BY id").fetchall()
        return [SignedPreKeyRecord(serialized=r[0]) for r in rows]

    def storeSignedPreKey(self, signedPreKeyId, signedPreKeyRecord):
        self._exec("INSERT OR REPLACE INTO signed_prekeys VALUES (?, ?)",
                   (signedPreKeyId, signedPreKeyRecord.serialize()))

    def containsSignedPreKey(self, signedPreKeyId):
        return self._one("SELECT 1 FROM signed_prekeys WHERE id = ?", (signedPreKeyId,)) is not None

    def removeSignedPreKey(self, signedPreKeyId):
        self._exec("DELETE FROM signed_prekeys WHERE id = ?", (signedPreKeyId,))

    # -- SessionStore ------------------------------------------------------------------
    def loadSession(self, recepientId, deviceId):
        row = self._one("SELECT record FROM sessions WHERE recipient_id = ? AND device_id = ?",
                        (recepientId, deviceId))
        return SessionRecord(serialized=row[0]) if row else SessionRecord()

    def getSubDeviceSessions(self, recepientId):
        with self._lock:
            rows = self._db.execute("SELECT device_id FROM sessions WHERE recipient_id = ? AND device_id != 1",
                                    (recepientId,)).fetchall()
        return [r[0] for r in rows]

    def storeSession(self, recepientId, deviceId, sessionRecord):
        self._exec("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?)",
                   (recepientId, deviceId, sessionRecord.serialize()))

    def containsSession(self, recepientId, deviceId):
        return self._one("SELECT 1 FROM sessions WHERE recipient_id = ? AND device_id = ?",
                         (recepientId, deviceId)) is not None

    def deleteSession(self, recepientId, deviceId):
        self._exec("DELETE FROM sessions WHERE recipient_id = ? AND device_id = ?", (recepientId, deviceId))

    def deleteAllSessions(self, recepientId):
        self._exec("DELETE FROM sessions WHERE recipient_id = ?", (recepientId,))

    # -- the client's own inbox (the client must retain what it received) -------------
    def keep(self, guid: str, sender: str, received_at: str, plaintext: bytes) -> bool:
        """Store a decrypted message; False if this guid was already kept (redelivery)."""
        with self._lock:
            cur = self._db.execute("INSERT OR IGNORE INTO inbox VALUES (?, ?, ?, ?)",
                                   (guid, sender, received_at, plaintext))
            return cur.rowcount == 1

    def has(self, guid: str) -> bool:
        return self._one("SELECT 1 FROM inbox WHERE guid = ?", (guid,)) is not None

    def inbox(self) -> list[tuple[str, str, str, bytes]]:
        with self._lock:
            return self._db.execute("SELECT guid, sender, received_at, plaintext FROM inbox "
                                    "ORDER BY received_at, guid").fetchall()
