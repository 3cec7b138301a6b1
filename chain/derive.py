"""scriptPubKey derivation for ranged descriptors (the chain index and devnet's wallets).

embit derives every key from the account xpub on each index (two CKDs per key, ~0.6 ms
per 2-of-3 index). Deriving scripts for many accounts needs better: here each key's
branch xpub is computed once, then one public CKD (HMAC-SHA512 plus a libsecp256k1
tweak) per key per index. Supported: wpkh(KEY) and wsh(multi|sortedmulti) with
unhardened `/…/*` keys; anything else returns None and callers use embit
(`script_deriver` does that fallback). Every fast deriver is checked against embit on
its first index before it is used.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Callable

from functools import lru_cache

from embit import hashes
from embit.descriptor import Descriptor
from embit.util import secp256k1


def _branch(key):
    """(sec, chain_code) of the key's parent for the wildcard, or (sec, None) for a
    fixed key; None when the key's derivation is unsupported."""
    if not key.is_extended:
        return key.get_public_key().sec(), None
    ad = key.allowed_derivation
    if ad is None or ad.has_hardend:
        return None
    path = ad.indexes
    if not path or path[-1] is not None or not all(isinstance(i, int) and i < 2 ** 31 for i in path[:-1]):
        return None
    hd = key.key.to_public() if key.key.is_private else key.key
    for i in path[:-1]:
        hd = hd.child(i)
    return hd.key.sec(), hd.chain_code


def _child_sec(sec: bytes, chain_code: bytes, index: int) -> bytes:
    tweak = hmac.new(chain_code, sec + index.to_bytes(4, "big"), hashlib.sha512).digest()[:32]
    pub = secp256k1.ec_pubkey_parse(sec)            # fresh 64-byte buffer, tweaked in place
    secp256k1.ec_pubkey_tweak_add(pub, tweak)
    return secp256k1.ec_pubkey_serialize(pub)


def spk_deriver(desc) -> Callable[[int], bytes] | None:
    """index → scriptPubKey for `desc`, or None when the fast path does not apply."""
    try:
        fn = _build(desc)
        if fn is None or fn(0) != desc.derive(0).script_pubkey().data:
            return None
        return fn
    except Exception:
        return None


def _build(desc):
    if not getattr(desc, "is_wildcard", False) or desc.sh or desc.taproot:
        return None
    keys = [_branch(k) for k in desc.keys]
    if any(k is None for k in keys):
        return None

    def secs(index: int) -> list[bytes]:
        return [sec if cc is None else _child_sec(sec, cc, index) for sec, cc in keys]

    if desc.wpkh and len(keys) == 1:
        return lambda i: b"\x00\x14" + hashes.hash160(secs(i)[0])
    ms = desc.miniscript
    name = type(ms).__name__.lower() if ms is not None else ""
    if desc.wsh and name in ("multi", "sortedmulti"):
        m, n = int(str(ms.args[0])), len(keys)
        if not 1 <= m <= n <= 16:
            return None

        def wsh_multi(i: int) -> bytes:
            ks = secs(i)
            if name == "sortedmulti":
                ks.sort()
            script = bytes([0x50 + m]) + b"".join(b"\x21" + k for k in ks) + bytes([0x50 + n, 0xAE])
            return b"\x00\x20" + hashlib.sha256(script).digest()
        return wsh_multi
    return None


@lru_cache(maxsize=4096)
def script_deriver(descriptor: str) -> Callable[[int], bytes]:
    """index → scriptPubKey bytes for a ranged descriptor string (checksum optional):
    the fast path when it applies, embit otherwise. Cached per descriptor string.
    Raises ValueError for a descriptor embit cannot parse."""
    try:
        desc = Descriptor.from_string(descriptor.split("#")[0])
    except Exception:
        raise ValueError("not a descriptor") from None
    fast = spk_deriver(desc)
    if fast is not None:
        return fast
    return lambda i: desc.derive(i).script_pubkey().data
