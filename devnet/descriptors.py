"""Output descriptors with Core-identical checksums (BIP380), parsed by embit.

Failure modes: every malformed descriptor raises RPCFailure(-5, ...) like Core's
"Invalid descriptor"/"Missing checksum"/"Provided checksum ... does not match" errors.
"""
from __future__ import annotations

from embit.descriptor import Descriptor
from embit.descriptor.checksum import checksum as _embit_checksum

from devnet.encoding import NETWORK
from devnet.errors import RPCFailure, INVALID_ADDRESS_OR_KEY, INVALID_PARAMETER


def checksum(desc: str) -> str:
    """The 8-character BIP380 checksum of `desc` (without any '#...')."""
    try:
        return _embit_checksum(desc)
    except Exception:
        raise RPCFailure(INVALID_ADDRESS_OR_KEY, "Invalid characters in payload") from None


def add_checksum(desc: str) -> str:
    return f"{desc}#{checksum(desc)}"


def split_checksum(text, require: bool) -> str:
    """Return `text` without its checksum after checking it; -5 when missing (if
    required) or wrong."""
    if not isinstance(text, str):
        raise RPCFailure(-3, "descriptor must be a string")
    if "#" in text:
        body, _, given = text.partition("#")
        if len(given) != 8:
            raise RPCFailure(INVALID_ADDRESS_OR_KEY,
                             f"Expected 8 character checksum, not {len(given)} characters")
        expect = checksum(body)
        if given != expect:
            raise RPCFailure(INVALID_ADDRESS_OR_KEY,
                             f"Provided checksum '{given}' does not match computed checksum '{expect}'")
        return body
    if require:
        raise RPCFailure(INVALID_ADDRESS_OR_KEY, "Missing checksum")
    return text


class ScriptDescriptor:
    """`addr(ADDRESS)` and `raw(HEX)` descriptors (embit has neither): one fixed script,
    no keys. Implements the subset of embit's Descriptor interface devnet uses."""

    is_wildcard = False
    is_taproot = False
    is_wrapped = False
    is_pkh = False
    is_basic_multisig = False
    keys: list = []

    def __init__(self, text: str, spk: bytes):
        self.text, self.spk = text, spk

    def script_pubkey(self):
        from embit.script import Script
        return Script(self.spk)

    def address(self, network=NETWORK) -> str:
        from devnet.encoding import address_of
        return address_of(self.spk)

    def derive(self, idx, branch_index=None):
        return self

    def to_public(self):
        return self

    def to_string(self) -> str:
        return self.text

    def scriptpubkey_type(self) -> str:
        return self.script_pubkey().script_type() or "unknown"

    def witness_script(self):
        return None

    def redeem_script(self):
        return None

    def owns(self, scope) -> bool:
        return scope.script_pubkey is not None and scope.script_pubkey.data == self.spk


def _parse_script_descriptor(body: str):
    from devnet.encoding import spk_of_address
    inner = body[body.index("(") + 1:-1]
    if body.startswith("addr("):
        try:
            return ScriptDescriptor(body, spk_of_address(inner))
        except RPCFailure:
            raise RPCFailure(INVALID_ADDRESS_OR_KEY, f"Address {inner} is not valid") from None
    try:
        return ScriptDescriptor(body, bytes.fromhex(inner))
    except ValueError:
        raise RPCFailure(INVALID_ADDRESS_OR_KEY, "Raw script is not hex") from None


def parse(text, require_checksum: bool = False) -> Descriptor:
    """Parse a descriptor string (checksum optional unless required) with embit
    (addr()/raw() handled here)."""
    body = split_checksum(text, require_checksum)
    if (body.startswith("addr(") or body.startswith("raw(")) and body.endswith(")"):
        return _parse_script_descriptor(body)
    try:
        desc = Descriptor.from_string(body)
    except Exception as exc:
        raise RPCFailure(INVALID_ADDRESS_OR_KEY, f"Invalid descriptor: {body[:80]}: {exc}") from None
    return desc


def has_private(desc: Descriptor) -> bool:
    return any(getattr(k, "is_private", False) for k in desc.keys)


def public_string(desc: Descriptor) -> str:
    """Canonical public form without checksum (hardened marker 'h', like Core ≥ 26)."""
    return desc.to_public().to_string() if has_private(desc) else desc.to_string()


def is_range(desc: Descriptor) -> bool:
    return bool(desc.is_wildcard)


def derive_spk(desc: Descriptor, index: int, branch: int | None = None) -> bytes:
    d = desc.derive(index, branch_index=branch) if desc.is_wildcard else desc
    return d.script_pubkey().data


def derive_address(desc: Descriptor, index: int, branch: int | None = None) -> str:
    d = desc.derive(index, branch_index=branch) if desc.is_wildcard else desc
    return d.address(NETWORK)


def parse_range(value, ranged: bool) -> tuple[int, int]:
    """Core's range argument: N → [0, N], [a, b] → [a, b]; -8 on bad values."""
    if value is None:
        return (0, 999)
    if isinstance(value, bool):
        raise RPCFailure(-3, "Range must be specified as end or as [begin,end]")
    if isinstance(value, int):
        lo, hi = 0, value
    elif isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        lo, hi = value
    else:
        raise RPCFailure(-3 if not isinstance(value, list) else INVALID_PARAMETER,
                         "Range must be specified as end or as [begin,end]")
    if lo < 0 or hi < 0:
        raise RPCFailure(INVALID_PARAMETER, "Range should be greater or equal than 0")
    if hi < lo:
        raise RPCFailure(INVALID_PARAMETER, "Range specified as [begin,end] must not have begin after end")
    if hi - lo >= 1_000_000:
        raise RPCFailure(INVALID_PARAMETER, "Range is too large")
    return lo, hi
