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

from embit.psbt import PSBT
from embit.script import Script, Witness

from cosigner.errors import PsbtRejected
from cosigner.psbt import AccountView, InputInfo, child_pub

MULTI_KEYS = 3


def _pub(key, branch: int, index: int):
    return child_pub(key.xpub, branch, index)


def multisig_order(view: AccountView, branch: int, index: int) -> list:
    """Public keys in the order the witness script lists them (derived)."""
    pubs = [_pub(k, branch, index) for k in view.keys()]
    if view.template == "2of3":
        return sorted(pubs, key=lambda p: p.sec())
    return pubs  # miniscript multi keeps descriptor order: platform, recovery, server


def script_multisig_keys(witness_script: bytes) -> list[bytes]:
    """The keys of the script's multi(2, …) in script order: its first three 33-byte
    pushes (both templates start `OP_2 <k1> <k2> <k3> OP_3 OP_CHECKMULTISIG`; the
    decaying branch after it pushes a 20-byte hash, never a key)."""
    keys, data, pos = [], witness_script, 0
    while pos < len(data) and len(keys) < MULTI_KEYS:
        op = data[pos]
        if op == 33 and pos + 34 <= len(data):
            keys.append(data[pos + 1:pos + 34])
            pos += 34
        elif 1 <= op <= 75:
            pos += 1 + op
        else:
            pos += 1
    return keys


def witness_for(psbt: PSBT, i: int, info: InputInfo, view: AccountView, *, recovery_path: bool = False) -> Witness:
    """Build input i's final witness from its partial signatures. Uses the witness script
    inspection proved (`info.witness_script`), deriving it only when absent. Raises
    PsbtRejected (code not_enough_signatures) when the chosen path is not satisfied."""
    if info.witness_script:
        ws = Script(info.witness_script)
    else:
        ws = (view.receive if info.branch == 0 else view.change).derive(info.index).witness_script()
    sigs = psbt.inputs[i].partial_sigs
    if recovery_path:
        if view.template != "2of3_decaying":
            raise PsbtRejected("this account has no timelocked recovery path", code="no_recovery_path")
        pub_r = _pub(view.recovery, info.branch + 2, info.index)
        sig_r = sigs.get(pub_r)
        if sig_r is None:
            raise PsbtRejected(f"input {i} lacks the recovery key's signature", code="not_enough_signatures")
        return Witness([sig_r, pub_r.sec(), b"", b"", b"", ws.data])
    by_sec = {pub.sec(): sig for pub, sig in sigs.items()}
    order = script_multisig_keys(ws.data) if info.witness_script else []
    if len(order) != MULTI_KEYS:
        order = [p.sec() for p in multisig_order(view, info.branch, info.index)]
    ordered = [by_sec[k] for k in order if k in by_sec]
    if len(ordered) < 2:
        raise PsbtRejected(f"input {i} has {len(ordered)} of 2 signatures", code="not_enough_signatures")
    return Witness([b"", *ordered[:2], ws.data])


def finalize(psbt: PSBT, inputs: tuple[InputInfo, ...], view: AccountView, *, recovery_path: bool = False) -> bytes:
    """The fully signed, serialized transaction (raw bytes)."""
    tx = psbt.tx
    for i, info in enumerate(inputs):
        tx.vin[i].witness = witness_for(psbt, i, info, view, recovery_path=recovery_path)
    return tx.serialize()
