"""PSBT inspection: decide what a PSBT really does, trusting neither bitcoind nor the
client. Pure (no I/O).

`inspect()` parses with embit and proves every claim by re-deriving from the account's
own keys: each input's script at the BIP32 path the PSBT names must equal the UTXO's
script (else `foreign_input`); an output is change only if the change descriptor at its
claimed path yields exactly its script (a fake path on a foreign address is
`change_not_ours`). Amounts come from witness_utxo, cross-checked with non_witness_utxo
when present. It refuses with PsbtRejected(code) — never partially — and returns an
`Intent` the policy engine can judge.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
from copy import copy
from dataclasses import dataclass, field

from embit.bip32 import HDKey
from embit import hashes
from embit.ec import PrivateKey, PublicKey, Signature
from embit.psbt import PSBT
from embit.script import Script
from embit.transaction import SIGHASH
from embit.util import secp256k1

from cosigner import hdkey_check
from cosigner import vsize as vs
from cosigner.descriptors import AccountKey, network_params
from cosigner.errors import PsbtRejected

MAX_INPUTS = 500
MAX_OUTPUTS = 500
HARDENED = 0x80000000

hdkey_check.install()   # embit's HDKey version check by lookup (cosigner/hdkey_check.py)


@dataclass(frozen=True)
class FeeCaps:
    """Hard safety caps that hold for every spend, whatever the policy says."""
    max_fee_sat: int = 5_000_000
    max_fee_rate: float = 2_000.0     # sat/vB
    max_fee_share: float = 0.25       # fee / external amount


@dataclass(frozen=True)
class InputInfo:
    txid: str
    vout: int
    amount_sat: int
    branch: int
    index: int
    # the witness script inspection re-derived from the account's descriptor and proved
    # against the UTXO (sha256 = its P2WSH program); the finalizer reuses it. Empty when
    # an InputInfo is built elsewhere: the finalizer then derives it itself.
    witness_script: bytes = field(default=b"", compare=False, repr=False)


@dataclass(frozen=True)
class OutputInfo:
    index: int
    amount_sat: int
    address: str | None
    script_hex: str
    change: bool
    change_index: int | None = None


@dataclass(frozen=True)
class Intent:
    txid: str                         # of the unsigned transaction
    inputs: tuple[InputInfo, ...]
    outputs: tuple[OutputInfo, ...]
    fee_sat: int
    vsize: int                        # estimated once fully signed
    fee_rate: float                   # sat/vB, on the estimated vsize
    platform_signed: bool = field(default=False)

    @property
    def external_sat(self) -> int:
        return sum(o.amount_sat for o in self.outputs if not o.change)

    @property
    def change_sat(self) -> int:
        return sum(o.amount_sat for o in self.outputs if o.change)

    @property
    def outpoints(self) -> tuple[str, ...]:
        return tuple(f"{i.txid}:{i.vout}" for i in self.inputs)


@dataclass(frozen=True)
class AccountView:
    """What inspection needs to know about an account."""
    network: str
    template: str
    platform: AccountKey
    recovery: AccountKey
    server: AccountKey
    receive: object                   # embit Descriptor (ranged)
    change: object

    def keys(self) -> tuple[AccountKey, ...]:
        return (self.platform, self.recovery, self.server)

    def branches(self) -> dict[int, object]:
        """Derivation branch → descriptor it belongs to."""
        b = {0: self.receive, 1: self.change}
        if self.template == "2of3_decaying":
            b.update({2: self.receive, 3: self.change})
        return b


def _path_ints(path: str) -> list[int]:
    return [int(p[:-1]) + HARDENED for p in path.split("/")]


def _locate(view: AccountView, derivations) -> tuple[int, int] | None:
    """The (branch, index) our keys' derivations name; None if none of ours. Raises when
    our own derivations disagree with each other."""
    found = set()
    for der in derivations.values():
        for k in view.keys():
            prefix = _path_ints(k.path)
            path = list(der.derivation)
            if der.fingerprint.hex() == k.fingerprint and path[:4] == prefix and len(path) == 6:
                branch, index = path[4], path[5]
                if branch >= HARDENED or index >= HARDENED or branch not in view.branches():
                    raise PsbtRejected("derivation path outside the account", code="foreign_input")
                found.add((branch % 2, index))
    if len(found) > 1:
        raise PsbtRejected("derivation paths disagree", code="foreign_input")
    return found.pop() if found else None


class _Derived:
    """A descriptor's scripts at one index: `witness_script()` and `script_pubkey()`."""
    __slots__ = ("_ws", "_spk")

    def __init__(self, ws: Script, spk: Script):
        self._ws, self._spk = ws, spk

    def witness_script(self) -> Script:
        return self._ws

    def script_pubkey(self) -> Script:
        return self._spk


# (id(descriptor), branch, keys) -> (descriptor, fast path proved for it); the descriptor
# is held so its id cannot be reused while the entry lives
_FAST_PROVED: dict[tuple, tuple[object, bool]] = {}


def _sortedmulti_script(view: AccountView, branch: int, index: int) -> bytes:
    secs = sorted(child_pub(k.xpub, branch, index).sec() for k in view.keys())
    return b"\x52" + b"".join(b"\x21" + sec for sec in secs) + b"\x53\xae"   # OP_2 <k>x3 OP_3 CHECKMULTISIG


def _fast_applies(view: AccountView, desc, branch: int) -> bool:
    """True when `desc` is the 2of3 sortedmulti of the view's three keys on `branch`:
    proved once per descriptor object by comparing the fast script with embit's at
    index 0 (the same keys and branch give the same script at every index)."""
    cache_key = (id(desc), branch, view.template, tuple(k.xpub for k in view.keys()))
    hit = _FAST_PROVED.get(cache_key)
    if hit is not None and hit[0] is desc:
        return hit[1]
    ok = False
    if view.template == "2of3":
        try:
            ok = _sortedmulti_script(view, branch, 0) == desc.derive(0).witness_script().data
        except Exception:
            ok = False
    if len(_FAST_PROVED) >= 4096:
        _FAST_PROVED.clear()
    _FAST_PROVED[cache_key] = (desc, ok)
    return ok


def _derived(view: AccountView, branch: int, index: int):
    """The account's scripts at (branch, index): for the 2of3 template from the cached
    branch keys (three public CKDs and a hash), otherwise through embit's descriptor."""
    desc = view.receive if branch == 0 else view.change
    if _fast_applies(view, desc, branch):
        ws = _sortedmulti_script(view, branch, index)
        return _Derived(Script(ws), Script(b"\x00\x20" + hashlib.sha256(ws).digest()))
    return desc.derive(index)


@functools.lru_cache(maxsize=4096)
def branch_key(xpub: str, branch: int) -> HDKey:
    """The (non-hardened) child `branch` of an account xpub, parsed and derived once per
    process: every later index on that branch costs one public derivation."""
    return HDKey.from_string(xpub).derive([branch])


def child_pub(xpub: str, branch: int, index: int) -> PublicKey:
    """The public key at xpub/branch/index (BIP32 CKDpub from the cached branch key; the
    same point embit's HDKey.derive gives, without building an HDKey per step)."""
    parent = branch_key(xpub, branch)
    if not 0 <= index < HARDENED:
        raise ValueError("a public derivation index is 0..2^31-1")
    tweak = hmac.new(parent.chain_code, parent.key.sec() + index.to_bytes(4, "big"), "sha512").digest()[:32]
    return PublicKey(secp256k1.ec_pubkey_add(copy(parent.key._point), tweak))


def derive_private(root: HDKey, path: list[int]) -> HDKey:
    """root/path for a private HDKey (BIP32 CKDpriv, hardened or not): the same key,
    chain code, depth, parent fingerprint and child number embit's `root.derive(path)`
    gives, with one HDKey built at the end instead of one per step (embit checks each
    new HDKey's version by base58-encoding it, ~0.7 ms). Raises ValueError for an empty
    path or a public root, HDError/ValueError when a step's tweak is invalid (as embit)."""
    if not path or not root.is_private:
        raise ValueError("a private root and a non-empty path")
    secret, chain_code, parent = root.key.serialize(), root.chain_code, root.key.serialize()
    for index in path:
        if not 0 <= index <= 0xFFFFFFFF:
            raise ValueError("a derivation index is 0..2^32-1")
        parent = secret
        data = (b"\x00" + secret if index >= HARDENED else PrivateKey(secret).sec()) + index.to_bytes(4, "big")
        raw = hmac.new(chain_code, data, "sha512").digest()
        secret, chain_code = secp256k1.ec_privkey_add(raw[:32], secret), raw[32:]
    fingerprint = hashes.hash160(PrivateKey(parent).sec())[:4]
    return HDKey(PrivateKey(secret), chain_code, version=root.version, depth=root.depth + len(path),
                 fingerprint=fingerprint, child_number=path[-1])


def _signer_pub(view: AccountView, signer: str, branch: int, index: int) -> PublicKey:
    """The multisig-branch public key of the platform or recovery key at (branch, index)."""
    key = view.platform if signer == "platform" else view.recovery
    return child_pub(key.xpub, branch, index)


def parse(psbt_b64: str) -> PSBT:
    try:
        psbt = PSBT.from_string(psbt_b64.strip())
    except Exception:
        raise PsbtRejected("not a valid base64 PSBT", code="psbt_malformed") from None
    if not psbt.inputs or not psbt.outputs:
        raise PsbtRejected("a PSBT needs inputs and outputs", code="psbt_malformed")
    if len(psbt.inputs) > MAX_INPUTS or len(psbt.outputs) > MAX_OUTPUTS:
        raise PsbtRejected("too many inputs or outputs", code="psbt_too_large")
    return psbt


def inspect(psbt: PSBT, view: AccountView, *, caps: FeeCaps, expected_txid: str | None = None,
            require_platform_signature: bool = True, signer: str = "platform") -> Intent:
    """Inspect a parsed PSBT for `view`. Raises PsbtRejected with one of: psbt_modified,
    wrong_network, input_amount_unknown, input_amount_mismatch, foreign_input,
    sighash_not_all, platform_signature_missing, platform_signature_invalid,
    change_not_ours, negative_fee, fee_too_high, fee_rate_too_high, fee_share_too_high.

    `signer` names whose signature must be present and valid on every input: the
    platform key (normal spends) or the recovery key (the recovery sweep); the codes
    are then recovery_signature_missing / recovery_signature_invalid."""
    if signer not in ("platform", "recovery"):
        raise ValueError("signer must be platform or recovery")
    who = "phone's" if signer == "platform" else "recovery key's"
    params = network_params(view.network)
    tx = psbt.tx
    txid = tx.txid().hex()
    if expected_txid is not None and txid != expected_txid:
        raise PsbtRejected("the transaction differs from the one the server built", code="psbt_modified")
    for xpub in psbt.xpubs:
        if xpub.version not in (params["xpub"], params["xprv"]):
            raise PsbtRejected(f"PSBT carries keys for another network than {view.network}", code="wrong_network")

    inputs, weight_witness, platform_signed = [], 0, True
    for i, inp in enumerate(psbt.inputs):
        utxo = inp.witness_utxo
        if utxo is None:
            raise PsbtRejected(f"input {i} has no witness_utxo: amount unknown", code="input_amount_unknown")
        prev_txid, vout = inp.vin.txid, inp.vin.vout
        if inp.non_witness_utxo is not None:
            nwu = inp.non_witness_utxo
            if nwu.txid() != prev_txid or vout >= len(nwu.vout) or \
                    nwu.vout[vout].value != utxo.value or nwu.vout[vout].script_pubkey != utxo.script_pubkey:
                raise PsbtRejected(f"input {i}: witness_utxo contradicts non_witness_utxo", code="input_amount_mismatch")
        loc = _locate(view, inp.bip32_derivations)
        if loc is None:
            raise PsbtRejected(f"input {i} is not the account's", code="foreign_input")
        branch, index = loc
        derived = _derived(view, branch, index)
        witness_script = derived.witness_script()
        if derived.script_pubkey() != utxo.script_pubkey or \
                (inp.witness_script is not None and inp.witness_script != witness_script):
            raise PsbtRejected(f"input {i} does not re-derive from the account's descriptor", code="foreign_input")
        if inp.sighash_type not in (None, SIGHASH.ALL):
            raise PsbtRejected(f"input {i} asks for a sighash other than ALL", code="sighash_not_all")
        for sig in inp.partial_sigs.values():
            if not sig or sig[-1] != SIGHASH.ALL:
                raise PsbtRejected(f"input {i} carries a signature that is not SIGHASH_ALL", code="sighash_not_all")
        pub = _signer_pub(view, signer, branch, index)
        sig = inp.partial_sigs.get(pub)
        if sig is None:
            platform_signed = False
            if require_platform_signature:
                raise PsbtRejected(f"input {i} lacks the {who} signature", code=f"{signer}_signature_missing")
        else:
            try:
                ok = pub.verify(Signature.parse(sig[:-1]),
                                tx.sighash_segwit(i, witness_script, utxo.value, sighash=SIGHASH.ALL))
            except Exception:
                ok = False
            if not ok:
                raise PsbtRejected(f"input {i}: the {who} signature is invalid", code=f"{signer}_signature_invalid")
        weight_witness += vs.witness_bytes(len(witness_script.data))
        inputs.append(InputInfo(prev_txid.hex(), vout, utxo.value, branch, index, witness_script.data))

    outputs = []
    for j, out in enumerate(psbt.outputs):
        spk = out.script_pubkey
        loc = _locate(view, out.bip32_derivations) if out.bip32_derivations else None
        change_index = None
        if loc is not None:
            branch, index = loc
            if branch != 1 or _derived(view, 1, index).script_pubkey() != spk:
                raise PsbtRejected(f"output {j} claims to be change but is not the account's", code="change_not_ours")
            change_index = index
        try:
            addr = spk.address(params)
        except Exception:
            addr = None
        outputs.append(OutputInfo(j, out.value, addr, spk.data.hex(), change_index is not None, change_index))

    fee = sum(i.amount_sat for i in inputs) - sum(o.amount_sat for o in outputs)
    if fee < 0:
        raise PsbtRejected("outputs exceed inputs", code="negative_fee")
    base = _base_size(tx)
    vsize = vs.vsize(4 * base + vs.SEGWIT_MARKER_WU + weight_witness)
    rate = fee / vsize
    external = sum(o.amount_sat for o in outputs if not o.change)
    if fee > caps.max_fee_sat:
        raise PsbtRejected(f"fee {fee} sat exceeds the cap of {caps.max_fee_sat}", code="fee_too_high",
                           details={"fee_sat": fee, "cap": caps.max_fee_sat})
    if rate > caps.max_fee_rate:
        raise PsbtRejected(f"fee rate {rate:.1f} sat/vB exceeds the cap of {caps.max_fee_rate}",
                           code="fee_rate_too_high", details={"fee_rate": round(rate, 2), "cap": caps.max_fee_rate})
    if external and fee > caps.max_fee_share * external:
        raise PsbtRejected(f"fee {fee} sat is more than {caps.max_fee_share:.0%} of the {external} sat sent",
                           code="fee_share_too_high", details={"fee_sat": fee, "external_sat": external})
    return Intent(txid, tuple(inputs), tuple(outputs), fee, vsize, round(rate, 3), platform_signed)


def _base_size(tx) -> int:
    """Serialized size without witness data (bytes)."""
    from io import BytesIO
    from embit.transaction import Transaction
    stripped = Transaction(version=tx.version, vin=[type(v)(v.txid, v.vout, sequence=v.sequence) for v in tx.vin],
                           vout=tx.vout, locktime=tx.locktime)
    buf = BytesIO()
    stripped.write_to(buf)
    return len(buf.getvalue())
