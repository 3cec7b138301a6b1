"""Pure hash-chain code: how a row is hashed and how a sequence of rows is verified."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Iterable

GENESIS_HASH = "0" * 64
_SECRET_KEY = re.compile(r"(?i)(pass(word|phrase)?|otp|share|shard|mnemonic|seed|secret|private|prv|signature|token)")


class AuditDetailsError(ValueError):
    """Details offered to the audit log contain a field that names a secret."""


@dataclass(frozen=True)
class Entry:
    seq: int
    at: dt.datetime
    actor: str
    action: str
    subject: str
    details: dict
    prev_hash: str
    hash: str


def check_details(details: dict) -> dict:
    """Return `details` if no key (at any depth) names a secret; raise AuditDetailsError."""
    def walk(value):
        if isinstance(value, dict):
            for k, v in value.items():
                if _SECRET_KEY.search(str(k)):
                    raise AuditDetailsError(f"audit details must not contain {k!r}")
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
    walk(details)
    return details


def entry_hash(seq: int, at: dt.datetime, actor: str, action: str, subject: str,
               details: dict, prev_hash: str) -> str:
    """SHA-256 (hex) of the canonical JSON of a row's content and the previous hash."""
    payload = json.dumps({
        "seq": seq, "at": at.astimezone(dt.timezone.utc).isoformat(timespec="microseconds"),
        "actor": actor, "action": action, "subject": subject, "details": details,
        "prev": prev_hash,
    }, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str | None = None


def verify_entries(entries: Iterable[Entry]) -> ChainReport:
    """Check that entries (in seq order) are contiguous from 1 and each hash matches
    its content and links to its predecessor. Stops at the first broken link."""
    prev = GENESIS_HASH
    expected_seq = 1
    checked = 0
    for e in entries:
        if e.seq != expected_seq:
            return ChainReport(False, checked, expected_seq, "missing or reordered row")
        if e.prev_hash != prev:
            return ChainReport(False, checked, e.seq, "previous-hash link broken")
        if entry_hash(e.seq, e.at, e.actor, e.action, e.subject, e.details, e.prev_hash) != e.hash:
            return ChainReport(False, checked, e.seq, "row content does not match its hash")
        prev = e.hash
        expected_seq += 1
        checked += 1
    return ChainReport(True, checked)
