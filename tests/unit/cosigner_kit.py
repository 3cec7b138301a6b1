"""Hand-made accounts and PSBTs for cosigner unit tests (no node needed)."""
from __future__ import annotations

import hashlib
import os

from embit.bip32 import HDKey
from embit.networks import NETWORKS
from embit.psbt import PSBT, DerivationPath
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from cosigner import descriptors as d
from cosigner.psbt import AccountView

NET = "regtest"
H = 0x80000000
FOREIGN_ADDR = "bcrt1qaf7d8n6j80dvy77zqh7gahs0snsqhymh2wkexquspvm6szf0zzfsj7zus8"


def seeded_root(label: str) -> HDKey:
    return HDKey.from_seed(hashlib.sha256(label.encode()).digest(), version=NETWORKS[NET]["xprv"])


class Account:
    def __init__(self, template="2of3", decay=None, label="acct"):
        self.roots = [seeded_root(f"{label}-{r}") for r in ("platform", "recovery", "server")]
        self.keys = [d.server_key(r, NET) for r in self.roots]
        self.template = template
        self.desc = d.build(template, *self.keys, decay_blocks=decay)
        receive, change = self.desc.parsed()
        self.view = AccountView(NET, template, *self.keys, receive, change)

    @property
    def platform(self):
        return self.roots[0]

    @property
    def recovery(self):
        return self.roots[1]

    @property
    def server(self):
        return self.roots[2]

    def derivations(self, branch, index):
        out = {}
        for k, r in zip(self.keys, self.roots):
            path = [int(p[:-1]) + H for p in k.path.split("/")] + [branch, index]
            out[r.derive(path).to_public().key] = DerivationPath(r.my_fingerprint, path)
        return out

    def spk(self, branch, index):
        return (self.view.receive if branch == 0 else self.view.change).derive(index).script_pubkey()

    def psbt(self, inputs=((0, 0, 100_000),), outputs=((FOREIGN_ADDR, 50_000),), change=(1, 3, 49_000),
             version=2, sequence=0xFFFFFFFD) -> PSBT:
        """inputs: (branch, index, amount); outputs: (address, amount); change: (branch, index, amount) or None."""
        vin = [TransactionInput(hashlib.sha256(f"prev{n}".encode()).digest(), n, sequence=sequence)
               for n in range(len(inputs))]
        vout = [TransactionOutput(a, Script.from_address(addr)) for addr, a in outputs]
        if change:
            vout.append(TransactionOutput(change[2], self.spk(change[0], change[1])))
        psbt = PSBT(Transaction(version=version, vin=vin, vout=vout))
        for n, (branch, index, amount) in enumerate(inputs):
            src = (self.view.receive if branch == 0 else self.view.change).derive(index)
            psbt.inputs[n].witness_utxo = TransactionOutput(amount, src.script_pubkey())
            psbt.inputs[n].witness_script = src.witness_script()
            psbt.inputs[n].bip32_derivations = self.derivations(branch, index)
        if change:
            psbt.outputs[len(outputs)].bip32_derivations = self.derivations(change[0], change[1])
        return psbt


def random_account_key():
    r = HDKey.from_seed(os.urandom(32), version=NETWORKS[NET]["xprv"])
    return r, d.server_key(r, NET)
