"""Time to mine one block holding 1,000 mempool transactions (generatetoaddress 1).
Target: < 2 s. Each run fills the mempool with 1,000 independent P2WPKH spends."""
import os
from decimal import Decimal

from embit import ec, hashes
from embit.networks import NETWORKS
from embit.script import Script, Witness, p2wpkh
from embit.transaction import SIGHASH, Transaction, TransactionInput, TransactionOutput

from devnet_benchlib import faucet, node_in_tempdir, report, timed

NET = NETWORKS["regtest"]
TXS, RUNS = 1000, 3


def main():
    node, tmp = node_in_tempdir()
    with node:
        rpc, fw = node.rpc(), faucet(node, 110)
        key = ec.PrivateKey(os.urandom(32))
        spk = p2wpkh(key.get_public_key())
        code = Script(b"\x76\xa9\x14" + hashes.hash160(key.get_public_key().sec()) + b"\x88\xac")
        samples = []
        for _ in range(RUNS):
            funding = [_fanout(rpc, fw, spk, 500) for _ in range(2)]
            rpc.generatetoaddress(1, fw.getnewaddress())
            raws = []
            for txid in funding:
                for n in range(500):
                    tx = Transaction(version=2, vin=[TransactionInput(bytes.fromhex(txid), n, sequence=0xFFFFFFFD)],
                                     vout=[TransactionOutput(199_000, spk)])
                    sig = key.sign(tx.sighash_segwit(0, code, 200_000, SIGHASH.ALL)).serialize() + b"\x01"
                    tx.vin[0].witness = Witness([sig, key.get_public_key().sec()])
                    raws.append(tx.serialize().hex())
            for raw in raws:
                rpc.sendrawtransaction(raw)
            assert rpc.getmempoolinfo()["size"] >= TXS
            ms, hashes_ = timed(rpc.generatetoaddress, 1, fw.getnewaddress())
            print(f"  block {hashes_[0][:16]}… with {len(rpc.getblock(hashes_[0])['tx']) - 1} txs in {ms:.0f} ms")
            samples.append(ms)
        report("generatetoaddress 1 block x 1,000 txs", samples, 2000)
    tmp.cleanup()


def _fanout(rpc, fw, spk, n) -> str:
    """A faucet transaction paying 200,000 sat to `spk` n times (raw outputs via PSBT)."""
    from embit.psbt import PSBT, OutputScope
    address = spk.address(NET)
    funded = fw.walletcreatefundedpsbt([], [{address: Decimal("0.002")}], 0, {"fee_rate": 2})
    psbt = PSBT.from_string(funded["psbt"])
    pay = [i for i, o in enumerate(psbt.tx.vout) if o.script_pubkey.data == spk.data][0]
    change = funded["changepos"]
    psbt.outputs[change].value -= 200_000 * (n - 1) + 2 * 31 * n
    for _ in range(n - 1):
        psbt.outputs.insert(pay, OutputScope(vout=TransactionOutput(200_000, spk)))
    signed = fw.walletprocesspsbt(psbt.to_string())
    return rpc.sendrawtransaction(signed["hex"])


if __name__ == "__main__":
    main()
