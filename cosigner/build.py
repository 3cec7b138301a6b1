"""Build an account's unsigned PSBT with embit. Pure (no I/O).

What the PSBT carries, so that the phone (and any BIP174 signer, Bitcoin Core included)
can check and sign it without trusting the server:
- global xpubs of the three account keys with their origins;
- every input: `witness_utxo` AND `non_witness_utxo` (the whole previous transaction, so
  an understated amount cannot pass — BIP174's answer to the segwit fee bug),
  `witness_script`, BIP32 derivations of every key in the script (the three keys on the
  input's branch; the decaying template's recovery branch key too), and nSequence
  0xFFFFFFFD (BIP125 replaceable) or 0xFFFFFFFE (final, locktime still enforced);
- the change output: `witness_script` and BIP32 derivations, so the phone re-derives it
  from its own descriptor;
- tx version 2 (BIP68, needed by the decaying template's `older()`), `locktime` as given
  (the service passes the tip height: anti fee sniping, like Core).

The caller decides input order and change position (the service shuffles both).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from embit.bip32 import HDKey
from embit.psbt import PSBT, DerivationPath
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from cosigner import vsize as vs
from cosigner.psbt import HARDENED, AccountView

SEQUENCE_RBF = 0xFFFFFFFD
SEQUENCE_FINAL_LOCKTIME = 0xFFFFFFFE
TX_VERSION = 2


class BuildError(ValueError):
    """The coins given cannot form this PSBT (e.g. a previous tx that does not match)."""


@dataclass(frozen=True)
class Coin:
    """A coin of the account as the chain index knows it."""
    txid: str                    # hex, display order
    vout: int
    amount_sat: int
    script: bytes                # scriptPubKey
    branch: int                  # 0 receive, 1 change
    index: int
    prev_tx: bytes | None = None  # the raw previous transaction (non_witness_utxo)

    @property
    def outpoint(self) -> str:
        return f"{self.txid}:{self.vout}"


def _ints(path: str) -> list[int]:
    return [int(p[:-1]) + HARDENED for p in path.split("/")]


@lru_cache(maxsize=4096)
def _child(xpub: str, branch: int, index: int):
    return HDKey.from_string(xpub).derive([branch, index]).key


def derivations(view: AccountView, branch: int, index: int) -> dict:
    """pubkey → DerivationPath for every key in the script at (branch, index)."""
    out = {}
    for k in view.keys():
        out[_child(k.xpub, branch, index)] = DerivationPath(bytes.fromhex(k.fingerprint), _ints(k.path) + [branch, index])
    if view.template == "2of3_decaying":
        r = view.recovery
        out[_child(r.xpub, branch + 2, index)] = DerivationPath(bytes.fromhex(r.fingerprint),
                                                                _ints(r.path) + [branch + 2, index])
    return out


def derived(view: AccountView, branch: int, index: int):
    return (view.receive if branch == 0 else view.change).derive(index)


@lru_cache(maxsize=1024)
def _ws_len(descriptor: str) -> int:
    from embit.descriptor import Descriptor
    return len(Descriptor.from_string(descriptor).derive(0).witness_script().data)


def witness_script_len(view: AccountView) -> int:
    """Length of the account's witness script (the same at every index: compressed keys)."""
    return _ws_len(str(view.receive))


def coin_weight(view: AccountView, path: str = "multisig") -> int:
    """Weight of spending one of the account's coins along `path` (see cosigner.vsize)."""
    return vs.input_weight(witness_script_len(view), path)


def change_script(view: AccountView, index: int) -> bytes:
    return derived(view, 1, index).script_pubkey().data


def build_psbt(view: AccountView, coins: list[Coin], outputs: list[tuple[bytes, int]], *,
               change: tuple[int, int] | None = None, change_position: int | None = None,
               locktime: int = 0, replaceable: bool = True) -> PSBT:
    """The unsigned PSBT spending `coins` (in this order) to `outputs` [(scriptPubKey,
    amount_sat)], with `change` = (change index, amount_sat) inserted at
    `change_position` (default: last). Raises BuildError when a coin's script does not
    re-derive from the account or its previous transaction does not match it."""
    sequence = SEQUENCE_RBF if replaceable else SEQUENCE_FINAL_LOCKTIME
    vin, prevs = [], []
    for c in coins:
        d = derived(view, c.branch, c.index)
        if d.script_pubkey().data != c.script:
            raise BuildError(f"coin {c.outpoint} is not at {c.branch}/{c.index} of this account")
        prev = None
        if c.prev_tx is not None:
            prev = Transaction.parse(c.prev_tx)
            if prev.txid().hex() != c.txid or c.vout >= len(prev.vout) or \
                    prev.vout[c.vout].value != c.amount_sat or prev.vout[c.vout].script_pubkey.data != c.script:
                raise BuildError(f"the previous transaction does not match coin {c.outpoint}")
        vin.append(TransactionInput(bytes.fromhex(c.txid), c.vout, sequence=sequence))
        prevs.append((d, prev))
    vout = [TransactionOutput(amount, Script(spk)) for spk, amount in outputs]
    pos = None
    if change is not None:
        pos = len(vout) if change_position is None else change_position
        if not 0 <= pos <= len(vout):
            raise BuildError("change position out of range")
        vout.insert(pos, TransactionOutput(change[1], Script(change_script(view, change[0]))))
    psbt = PSBT(Transaction(version=TX_VERSION, vin=vin, vout=vout, locktime=locktime))
    for k in view.keys():
        psbt.xpubs[HDKey.from_string(k.xpub)] = DerivationPath(bytes.fromhex(k.fingerprint), _ints(k.path))
    for scope, c, (d, prev) in zip(psbt.inputs, coins, prevs):
        scope.witness_utxo = TransactionOutput(c.amount_sat, Script(c.script))
        if prev is not None:
            scope.non_witness_utxo = prev
        scope.witness_script = d.witness_script()
        scope.bip32_derivations = derivations(view, c.branch, c.index)
    if pos is not None:
        out = psbt.outputs[pos]
        out.witness_script = derived(view, 1, change[0]).witness_script()
        out.bip32_derivations = derivations(view, 1, change[0])
    return psbt
