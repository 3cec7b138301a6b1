"""Test-side Bitcoin helpers built on embit only: keys, descriptors, raw transactions
signed outside the node. Amounts in satoshis unless a name says btc."""
from __future__ import annotations

import os
from decimal import Decimal

from embit import bip32, ec, hashes
from embit.descriptor import Descriptor
from embit.descriptor.checksum import checksum
from embit.networks import NETWORKS
from embit.script import Script, Witness, p2wpkh
from embit.transaction import SIGHASH, Transaction, TransactionInput, TransactionOutput

from chain.errors import RPCError
from chain.rpc import btc_to_sat, sat_to_btc

NET = NETWORKS["regtest"]


class Key:
    """A single private key with its P2WPKH script and address."""

    def __init__(self):
        self.priv = ec.PrivateKey(os.urandom(32))
        self.pub = self.priv.get_public_key()
        self.spk = p2wpkh(self.pub)
        self.address = self.spk.address(NET)


def hd_cosigner():
    """(root HDKey, descriptor key text '[fp/48h/1h/0h/2h]tpub…') of a fresh cosigner."""
    root = bip32.HDKey.from_seed(os.urandom(32), version=NET["xprv"])
    account = root.derive("m/48h/1h/0h/2h").to_public()
    return root, f"[{root.my_fingerprint.hex()}/48h/1h/0h/2h]{account.to_base58(NET['xpub'])}"


def with_checksum(desc: str) -> str:
    return f"{desc}#{checksum(desc)}"


def expect_rpc_error(fn, *args) -> RPCError:
    try:
        fn(*args)
    except RPCError as exc:
        return exc
    raise AssertionError(f"expected an RPC error from {args!r}")


def fund(rpc, faucet, address: str, amount_btc: str, *, mine_blocks=None) -> tuple[str, int, int]:
    """Pay `amount_btc` from the faucet to `address`; returns (txid, vout, value_sat)."""
    txid = faucet.sendtoaddress(address, Decimal(amount_btc))
    tx = rpc.getrawtransaction(txid, True)
    for out in tx["vout"]:
        if out["scriptPubKey"].get("address") == address:
            return txid, out["n"], btc_to_sat(out["value"])
    raise AssertionError("payment output not found")


def sign_p2wpkh(key: Key, prevouts, outputs, *, version=2, locktime=0, sequence=0xFFFFFFFD) -> str:
    """Raw hex of a tx spending P2WPKH `prevouts` [(txid, vout, value_sat)] owned by `key`
    to `outputs` [(scriptPubKey Script, value_sat)]."""
    tx = Transaction(version=version, vin=[TransactionInput(bytes.fromhex(t), n, sequence=sequence)
                                           for t, n, _ in prevouts],
                     vout=[TransactionOutput(v, s) for s, v in outputs], locktime=locktime)
    script_code = Script(b"\x76\xa9\x14" + hashes.hash160(key.pub.sec()) + b"\x88\xac")
    for i, (_, _, value) in enumerate(prevouts):
        h = tx.sighash_segwit(i, script_code, value, SIGHASH.ALL)
        sig = key.priv.sign(h).serialize() + bytes([SIGHASH.ALL])
        tx.vin[i].witness = Witness([sig, key.pub.sec()])
    return tx.serialize().hex()


def segwit_sig(priv: ec.PrivateKey, tx: Transaction, i: int, script: Script, value: int) -> bytes:
    return priv.sign(tx.sighash_segwit(i, script, value, SIGHASH.ALL)).serialize() + bytes([SIGHASH.ALL])


__all__ = ["Key", "hd_cosigner", "with_checksum", "expect_rpc_error", "fund", "sign_p2wpkh",
           "segwit_sig", "btc_to_sat", "sat_to_btc", "Descriptor", "NET", "Script", "Witness",
           "Transaction", "TransactionInput", "TransactionOutput", "ec"]
