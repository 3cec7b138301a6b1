"""Account keys and descriptors. Pure.

Key input: an extended public key plus its origin `[fingerprint/48'/coin'/account'/2']`
(`h` or `'` accepted). Keys are checked for the network's version bytes (tpub/Vpub for
test networks, xpub/Zpub for main), depth 4 matching the origin, and private material
sent by mistake is refused with its own code (nothing is stored).

Templates (receive uses branch /0/*, change /1/*):
- `2of3`: wsh(sortedmulti(2, P, R, S)).
- `2of3_decaying`: wsh(or_d(multi(2, P, R, S), and_v(v:pkh(R'), older(N)))) where R' is the
  recovery key on branch /2/* (receive) or /3/* (change): miniscript forbids a key twice
  in one script, so the timelocked path uses its own derivation branch.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from embit.bip32 import HDKey
from embit.descriptor import Descriptor
from embit.descriptor.checksum import add_checksum
from embit.networks import NETWORKS

from cosigner.errors import InvalidDescriptor, InvalidKey

TEMPLATES = ("2of3", "2of3_decaying")
MAX_DECAY_BLOCKS = 65_535          # BIP68 height-based relative locktime limit
EMBIT_NETWORK = {"main": "main", "testnet": "test", "signet": "signet", "regtest": "regtest"}
_ORIGIN = re.compile(r"^\[?([0-9a-fA-F]{8})((?:/\d+['h]?)+)\]?$")
_PRIVATE_PREFIXES = ("xprv", "tprv", "yprv", "zprv", "Yprv", "Zprv", "uprv", "vprv", "Uprv", "Vprv")
# SLIP-132 multisig P2WSH public prefixes → the network's plain xpub version
_SLIP132 = {"Zpub": "main", "Vpub": "test"}


def network_params(network: str) -> dict:
    return NETWORKS[EMBIT_NETWORK[network]]


def coin_type(network: str) -> int:
    return 0 if network == "main" else 1


def account_path(network: str, account: int = 0) -> str:
    """BIP48 P2WSH account path (without the leading m)."""
    return f"48h/{coin_type(network)}h/{account}h/2h"


@dataclass(frozen=True)
class AccountKey:
    """A validated key: `fingerprint` (8 hex), `path` like "48h/1h/0h/2h", `xpub` in the
    network's standard encoding (tpub… / xpub…)."""
    fingerprint: str
    path: str
    xpub: str

    @property
    def origin(self) -> str:
        return f"[{self.fingerprint}/{self.path}]"

    def expr(self, branch: int) -> str:
        return f"{self.origin}{self.xpub}/{branch}/*"


def looks_private(text: str) -> bool:
    """True for extended private keys and WIF private keys."""
    t = (text or "").strip()
    return t.startswith(_PRIVATE_PREFIXES) or bool(re.fullmatch(r"[5KLc9][1-9A-HJ-NP-Za-km-z]{50,51}", t))


def contains_private(text) -> bool:
    """True when a descriptor (or any text) carries a private key anywhere: an extended
    private key, or a WIF key as any base58 word (`wpkh(<WIF>)`, `sh(wpkh(<WIF>))`), or a
    key embit parses as private. Refuse such input before storing anything."""
    if not isinstance(text, str) or not text:
        return False
    if any(looks_private(word) or word.startswith(_PRIVATE_PREFIXES)
           for word in re.findall(r"[1-9A-HJ-NP-Za-km-z]{40,}", text)):
        return True
    try:
        from embit.descriptor import Descriptor
        return any(k.is_private for k in Descriptor.from_string(text.strip().split("#")[0]).keys)
    except Exception:  # not a descriptor embit reads: the caller's own parse answers that
        return False


def parse_origin(origin: str, network: str) -> tuple[str, str]:
    """'[d34db33f/48h/1h/0h/2h]' → ('d34db33f', "48h/1h/0h/2h"). Requires the BIP48 P2WSH
    shape with the network's coin type. Raises InvalidKey(code='invalid_origin')."""
    m = _ORIGIN.match((origin or "").strip())
    if not m:
        raise InvalidKey("origin must look like [fingerprint/48h/coin h/account h/2h]", code="invalid_origin")
    parts = m.group(2).strip("/").split("/")
    if len(parts) != 4 or not all(p[-1] in "h'" for p in parts):
        raise InvalidKey("origin path must be 4 hardened steps: 48h/coin h/account h/2h", code="invalid_origin")
    nums = [int(p[:-1]) for p in parts]
    if nums[0] != 48 or nums[3] != 2 or nums[1] != coin_type(network) or nums[2] >= 2**31:
        raise InvalidKey(f"origin path must be 48h/{coin_type(network)}h/<account>h/2h on {network}",
                         code="invalid_origin")
    return m.group(1).lower(), "/".join(f"{n}h" for n in nums)


def parse_key(xpub: str, origin: str, network: str) -> AccountKey:
    """Validate one cosigner key. Raises InvalidKey with codes private_key_sent,
    wrong_network, invalid_xpub, invalid_origin, origin_mismatch."""
    text = (xpub or "").strip()
    if looks_private(text):
        raise InvalidKey("this is a PRIVATE key: never send it to any server. Nothing was stored; "
                         "send the extended public key instead", code="private_key_sent")
    fingerprint, path = parse_origin(origin, network)
    params = network_params(network)
    prefix = text[:4]
    expected_pub = "xpub" if network == "main" else "tpub"
    if prefix in _SLIP132:
        if (_SLIP132[prefix] == "main") != (network == "main"):
            raise InvalidKey(f"{prefix} key is for another network than {network}", code="wrong_network")
    elif prefix != expected_pub:
        raise InvalidKey(f"expected a {expected_pub}… key on {network}", code="wrong_network")
    try:
        key = HDKey.from_string(text)
    except Exception:
        raise InvalidKey("not a valid extended public key", code="invalid_xpub") from None
    if key.is_private:
        raise InvalidKey("this is a PRIVATE key: nothing was stored", code="private_key_sent")
    if key.depth != 4:
        raise InvalidKey("the key's depth does not match its 4-step origin path", code="origin_mismatch")
    return AccountKey(fingerprint, path, key.to_base58(version=params["xpub"]))


@dataclass(frozen=True)
class AccountDescriptors:
    receive: str   # with checksum
    change: str    # with checksum
    template: str

    def parsed(self) -> tuple[Descriptor, Descriptor]:
        return Descriptor.from_string(self.receive.split("#")[0]), Descriptor.from_string(self.change.split("#")[0])


def build(template: str, platform: AccountKey, recovery: AccountKey, server: AccountKey,
          decay_blocks: int | None = None) -> AccountDescriptors:
    """Build the receive and change descriptors (with checksums) for a template.
    Raises InvalidDescriptor for a bad template, duplicate keys or decay_blocks."""
    keys = (platform, recovery, server)
    if len({k.xpub for k in keys}) != 3 or len({(k.fingerprint, k.path) for k in keys}) != 3:
        raise InvalidDescriptor("the three keys must all be different", code="duplicate_keys")
    if template == "2of3":
        if decay_blocks is not None:
            raise InvalidDescriptor("decay_blocks is only for the 2of3_decaying template")
        make = lambda b: f"wsh(sortedmulti(2,{','.join(k.expr(b) for k in keys)}))"  # noqa: E731
    elif template == "2of3_decaying":
        if not isinstance(decay_blocks, int) or not 1 <= decay_blocks <= MAX_DECAY_BLOCKS:
            raise InvalidDescriptor(f"decay_blocks must be 1..{MAX_DECAY_BLOCKS}", code="invalid_decay_blocks")
        make = lambda b: (f"wsh(or_d(multi(2,{','.join(k.expr(b) for k in keys)}),"  # noqa: E731
                          f"and_v(v:pkh({recovery.expr(b + 2)}),older({decay_blocks}))))")
    else:
        raise InvalidDescriptor(f"template must be one of {', '.join(TEMPLATES)}", code="invalid_template")
    receive, change = make(0), make(1)
    for d in (receive, change):
        Descriptor.from_string(d)  # embit must accept what we hand to bitcoind
    return AccountDescriptors(add_checksum(receive), add_checksum(change), template)


def server_key(root: HDKey, network: str, account: int = 0) -> AccountKey:
    """The server's AccountKey for a cosigner root key (private root stays in the vault)."""
    path = account_path(network, account)
    xpub = root.derive("m/" + path).to_public().to_base58(version=network_params(network)["xpub"])
    return AccountKey(root.my_fingerprint.hex(), path, xpub)


def address(descriptor: str, index: int, network: str) -> str:
    """The address at `index` of a ranged descriptor."""
    if not 0 <= index < 2**31:
        raise InvalidDescriptor("index out of range")
    return Descriptor.from_string(descriptor.split("#")[0]).derive(index).address(network_params(network))


@functools.lru_cache(maxsize=4096)
def parse_descriptor(text: str) -> Descriptor:
    """The parsed embit Descriptor for a stored descriptor string (checksum ignored),
    parsed once per process and shared: the per-account cache of parsed descriptors the
    cosign path reuses (parsing costs several base58 round trips per key). Callers must
    not mutate the result; `derive()` returns new objects. Raises what embit raises."""
    return Descriptor.from_string(text.split("#")[0])
