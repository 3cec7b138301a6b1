"""The phone's side of a multisig account: BIP39 seeds for the platform key and a separate
recovery seed, BIP48 account keys, independent checks of what the server returns (its
descriptors and every PSBT: fee, change), and signing with embit.

The checks here deliberately do not import the server's code: the phone verifies on its
own that the descriptor contains its two keys and that change pays back to it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from embit import bip39
from embit.bip32 import HDKey
from embit.descriptor import Descriptor
from embit.descriptor.checksum import add_checksum
from embit.networks import NETWORKS
from embit.psbt import PSBT
from embit.transaction import SIGHASH

_EMBIT = {"main": "main", "testnet": "test", "signet": "signet", "regtest": "regtest"}


class VerificationError(Exception):
    """What the server returned does not match what the phone expects: do not sign."""


def new_mnemonic() -> str:
    return bip39.mnemonic_from_bytes(os.urandom(16))


@dataclass
class Seed:
    mnemonic: str
    network: str

    @property
    def params(self):
        return NETWORKS[_EMBIT[self.network]]

    @property
    def root(self) -> HDKey:
        return HDKey.from_seed(bip39.mnemonic_to_seed(self.mnemonic), version=self.params["xprv"])

    @property
    def path(self) -> str:
        return f"48h/{0 if self.network == 'main' else 1}h/0h/2h"

    def account_key(self) -> dict:
        """{"xpub", "origin"} as the server expects them."""
        root = self.root
        xpub = root.derive("m/" + self.path).to_public().to_base58(version=self.params["xpub"])
        return {"xpub": xpub, "origin": f"[{root.my_fingerprint.hex()}/{self.path}]"}


class PhoneWallet:
    """Platform seed + recovery seed for one account on one network."""

    def __init__(self, network: str = "regtest", platform: str | None = None, recovery: str | None = None):
        self.network = network
        self.platform = Seed(platform or new_mnemonic(), network)
        self.recovery = Seed(recovery or new_mnemonic(), network)

    def account_request(self, name: str, template: str = "2of3", decay_blocks: int | None = None) -> dict:
        body = {"name": name, "network": self.network, "template": template,
                "platform_key": self.platform.account_key(), "recovery_key": self.recovery.account_key()}
        if decay_blocks is not None:
            body["decay_blocks"] = decay_blocks
        return body

    # -- verification ---------------------------------------------------------
    def verify_account(self, account: dict) -> None:
        """Rebuild the expected descriptors from the three keys and compare, checksums
        included. Raises VerificationError."""
        server = account["server_key"]
        keys = [self.platform.account_key(), self.recovery.account_key(), server]
        exprs = lambda b: [f"{k['origin']}{k['xpub']}/{b}/*" for k in keys]  # noqa: E731
        for branch, field in ((0, "receive_descriptor"), (1, "change_descriptor")):
            if account["template"] == "2of3":
                body = f"wsh(sortedmulti(2,{','.join(exprs(branch))}))"
            else:
                rec = self.recovery.account_key()
                body = (f"wsh(or_d(multi(2,{','.join(exprs(branch))}),and_v(v:pkh({rec['origin']}{rec['xpub']}/"
                        f"{branch + 2}/*),older({account['decay_blocks']}))))")
            if add_checksum(body) != account[field]:
                raise VerificationError(f"{field} is not the one my keys and the server key make")

    def verify_spend(self, account: dict, spend: dict, requested: list[dict]) -> PSBT:
        """Check the server-built PSBT before signing: fee = inputs − outputs as claimed,
        every requested output present, every other output is change that my change
        descriptor derives. Returns the parsed PSBT."""
        psbt = PSBT.from_string(spend["psbt"])
        change = Descriptor.from_string(account["change_descriptor"].split("#")[0])
        for n, inp in enumerate(psbt.inputs):  # amounts proved by the previous transactions themselves
            prev = inp.non_witness_utxo
            if prev is None or prev.txid() != inp.vin.txid or inp.vin.vout >= len(prev.vout) or \
                    prev.vout[inp.vin.vout].value != inp.witness_utxo.value or \
                    prev.vout[inp.vin.vout].script_pubkey != inp.witness_utxo.script_pubkey:
                raise VerificationError(f"input {n}: its amount is not proved by its previous transaction")
        total_in = sum(inp.witness_utxo.value for inp in psbt.inputs)
        total_out = sum(out.value for out in psbt.outputs)
        if total_in - total_out != spend["fee_sat"]:
            raise VerificationError("the fee the server states is not the PSBT's fee")
        params = NETWORKS[_EMBIT[self.network]]
        wanted = {(o["address"], o["amount_sat"]) for o in requested}
        for out in psbt.outputs:
            addr = out.script_pubkey.address(params)
            if (addr, out.value) in wanted:
                wanted.discard((addr, out.value))
                continue
            if not change.owns(out):
                raise VerificationError(f"output to {addr} is neither requested nor my change")
        if wanted and not spend.get("subtract_fee_from"):
            # with subtractFeeFromOutputs the amount shrinks; otherwise all must be present
            if any(a for a, _ in wanted if not any(o.script_pubkey.address(params) == a for o in psbt.outputs)):
                raise VerificationError("a requested output is missing")
        return psbt

    def sign(self, psbt: PSBT, with_recovery: bool = False) -> str:
        """Sign with the platform key (or the recovery key); returns base64."""
        root = (self.recovery if with_recovery else self.platform).root
        if psbt.sign_with(root, SIGHASH.ALL) == 0:
            raise VerificationError("nothing to sign with this key")
        return psbt.to_string()
