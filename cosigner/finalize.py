"""Our own finalizer for the script shapes Custos uses (embit's finalizer handles plain
multisig only and raises "Not multisig" for miniscript). Pure.

Witness stacks (first item = bottom of the stack):
- sortedmulti(2, …) and the multisig branch of the decaying template:
  `["", sig_a, sig_b, witness_script]`, signatures in the script's key order;
- decaying template, timelocked branch `and_v(v:pkh(R'), older(N))` under the
  dissatisfied multi: `[sig_r, pubkey_r, "", "", "", witness_script]` (the three empty
  items dissatisfy `multi(2,…)`; nSequence ≥ N and tx version 2 are the caller's job).
Kernel-verified in tests for every shape.
"""
from __future__ import annotations

from embit.bip32 import HDKey
from embit.psbt import PSBT
from embit.script import Witness

from cosigner.errors import PsbtRejected
from cosigner.psbt import AccountView, InputInfo


def _pub(key, branch: int, index: int):
    return HDKey.from_string(key.xpub).derive([branch, index]).key


def multisig_order(view: AccountView, branch: int, index: int) -> list:
    """Public keys in the order the witness script lists them."""
    pubs = [_pub(k, branch, index) for k in view.keys()]
    if view.template == "2of3":
        return sorted(pubs, key=lambda p: p.sec())
    return pubs  # miniscript multi keeps descriptor order: platform, recovery, server


def witness_for(psbt: PSBT, i: int, info: InputInfo, view: AccountView, *, recovery_path: bool = False) -> Witness:
    """Build input i's final witness from its partial signatures. Raises PsbtRejected
    (code not_enough_signatures) when the chosen path is not satisfied."""
    derived = (view.receive if info.branch == 0 else view.change).derive(info.index)
    ws = derived.witness_script()
    sigs = psbt.inputs[i].partial_sigs
    if recovery_path:
        if view.template != "2of3_decaying":
            raise PsbtRejected("this account has no timelocked recovery path", code="no_recovery_path")
        pub_r = _pub(view.recovery, info.branch + 2, info.index)
        sig_r = sigs.get(pub_r)
        if sig_r is None:
            raise PsbtRejected(f"input {i} lacks the recovery key's signature", code="not_enough_signatures")
        return Witness([sig_r, pub_r.sec(), b"", b"", b"", ws.data])
    ordered = [sigs[p] for p in multisig_order(view, info.branch, info.index) if p in sigs]
    if len(ordered) < 2:
        raise PsbtRejected(f"input {i} has {len(ordered)} of 2 signatures", code="not_enough_signatures")
    return Witness([b"", *ordered[:2], ws.data])


def finalize(psbt: PSBT, inputs: tuple[InputInfo, ...], view: AccountView, *, recovery_path: bool = False) -> bytes:
    """The fully signed, serialized transaction (raw bytes)."""
    tx = psbt.tx
    for i, info in enumerate(inputs):
        tx.vin[i].witness = witness_for(psbt, i, info, view, recovery_path=recovery_path)
    return tx.serialize()
