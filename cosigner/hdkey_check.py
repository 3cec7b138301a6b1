"""A cheaper version check for embit's HDKey (installed once, at import of cosigner.psbt).

embit's `HDKey.__init__` checks that a key's version bytes fit the key — the base58 form
must read "…prv" for a private key and "…pub" for a public one — by base58-encoding the
whole 82-byte key, ~0.15 ms, on every HDKey it builds: each PSBT global xpub parsed, each
derivation step of `sign_with`, each key we derive. A cosign built ~8 of them (~1 ms of
its CPU). For the version bytes of embit's own networks the answer depends on the four
version bytes alone (BIP32 chose them so that every payload gives the same prefix; checked
here at install with the smallest and the largest payload), so it is looked up; any other
version still goes through embit's own check. The same keys are accepted and the same
ones refused (tests/unit/test_hdkey_check.py).

`HDKey.read_from` (every PSBT global xpub: 3 per cosign PSBT, parsed at each submit)
base58-encodes the key once more after building it, to check the version's prefix reads
"prv" or "pub". For a known version the lookup above already answers that, so it is
skipped there; the bytes are read and checked as embit reads them (issue #19: 2.4% of a
cosign submit's instructions, callgrind)."""
from __future__ import annotations

from embit import base58, ec
from embit.bip32 import HDError, HDKey
from embit.networks import NETWORKS

_original_init = HDKey.__init__
_original_read_from = HDKey.read_from          # bound to HDKey (a classmethod)
_KNOWN: dict[bytes, str] = {}      # version bytes → "prv" / "pub"


def _prefix(version: bytes, payload: bytes) -> str:
    return base58.encode_check(version + payload)[1:4]


def _learn() -> None:
    low, high = b"\x00" * 74, b"\xff" * 74          # depth … key: the rest of a serialized HDKey
    for net in NETWORKS.values():
        for name, version in net.items():
            if isinstance(version, bytes) and len(version) == 4 and name[-3:] in ("prv", "pub"):
                first, last = _prefix(version, low), _prefix(version, high)
                if first == last and first in ("prv", "pub"):
                    _KNOWN[version] = first


def _init(self, key, chain_code, version=None, depth=0, fingerprint=b"\x00\x00\x00\x00", child_number=0):
    kind = _KNOWN.get(version) if version is not None else None
    if kind is None:                                 # embit's own path, check included
        _original_init(self, key, chain_code, version, depth, fingerprint, child_number)
        return
    size = len(key.serialize())
    if size != 32 and size != 33:
        raise HDError("Invalid key. Should be private or compressed public")
    self.key, self.version, self.chain_code, self.depth = key, version, chain_code, depth
    self.fingerprint, self._my_fingerprint, self.child_number = fingerprint, b"", child_number
    if kind == "pub" and key.is_private:               # embit's to_base58 says it so
        raise HDError("Invalid version for public key")
    if kind == "prv" and not key.is_private:
        raise HDError("Invalid version for private key")


def _read_from(cls, stream):
    """embit's HDKey.read_from (a serialized 78-byte key), without the second base58
    encoding for a version in the table: its prefix is known to be "prv" or "pub", and
    `_init` has checked that it fits the key. Any other version: embit's own read."""
    version = stream.read(4)
    if _KNOWN.get(version) is None:
        return _original_read_from.__func__(cls, _Prefixed(version, stream))
    depth = stream.read(1)
    fingerprint, child_number, chain_code, k = stream.read(4), stream.read(4), stream.read(32), stream.read(33)
    if not depth or not k:
        raise HDError("Not enough bytes")   # embit: an IndexError or a key parse error here
    key = ec.PrivateKey.parse(k[1:]) if k[0] == 0 else ec.PublicKey.parse(k)
    if len(fingerprint) < 4 or len(chain_code) < 32:
        raise HDError("Not enough bytes")
    return cls(key, chain_code, version=version, depth=depth[0], fingerprint=fingerprint,
               child_number=int.from_bytes(child_number, "big"))


class _Prefixed:
    """A stream that gives back the bytes already read from it first (for embit's read)."""

    def __init__(self, head: bytes, stream):
        self._head, self._stream = head, stream

    def read(self, n: int = -1) -> bytes:
        if not self._head:
            return self._stream.read(n)
        if n < 0:
            head, self._head = self._head, b""
            return head + self._stream.read()
        head, self._head = self._head[:n], self._head[n:]
        return head + (self._stream.read(n - len(head)) if n > len(head) else b"")


def install() -> None:
    """Idempotent."""
    if HDKey.__init__ is not _init:
        _learn()
        HDKey.__init__ = _init
        HDKey.read_from = classmethod(_read_from)
