"""Time to accept a 2-input P2WSH 2-of-3 multisig transaction (sendrawtransaction,
kernel script verification included). Target: median < 15 ms."""
import os
from decimal import Decimal

from embit import bip32
from embit.descriptor.checksum import checksum
from embit.networks import NETWORKS
from embit.psbt import PSBT

from devnet_benchlib import faucet, node_in_tempdir, report, timed

NET = NETWORKS["regtest"]
TXS = 40


def main():
    node, tmp = node_in_tempdir()
    with node:
        rpc, fw = node.rpc(), faucet(node, 110)
        roots = [bip32.HDKey.from_seed(os.urandom(32), version=NET["xprv"]) for _ in range(3)]
        keys = [f"[{r.my_fingerprint.hex()}/48h/1h/0h/2h]{r.derive('m/48h/1h/0h/2h').to_public().to_base58(NET['xpub'])}"
                for r in roots]
        rpc.createwallet("ms", True, True)
        ms = node.rpc("ms")
        for branch, internal in ((0, False), (1, True)):
            d = f"wsh(sortedmulti(2,{','.join(k + f'/{branch}/*' for k in keys)}))"
            ms.importdescriptors([{"desc": f"{d}#{checksum(d)}", "active": True, "internal": internal,
                                   "range": [0, 200], "timestamp": "now"}])
        addresses = [ms.getnewaddress() for _ in range(2 * TXS)]
        fw.sendmany("", {a: Decimal("0.01") for a in addresses})
        rpc.generatetoaddress(1, fw.getnewaddress())
        utxos = ms.listunspent()
        raws = []
        for i in range(TXS):
            pair = utxos[2 * i:2 * i + 2]
            funded = ms.walletcreatefundedpsbt([{"txid": u["txid"], "vout": u["vout"]} for u in pair],
                                               [{fw.getnewaddress(): Decimal("0.019")}], 0,
                                               {"fee_rate": 2, "add_inputs": False})
            psbt = PSBT.from_string(funded["psbt"])
            psbt.sign_with(roots[0])
            psbt.sign_with(roots[1])
            raws.append(rpc.finalizepsbt(psbt.to_string())["hex"])
        samples = [timed(rpc.sendrawtransaction, raw)[0] for raw in raws]
        report("sendrawtransaction 2-in P2WSH 2-of-3 (RPC)", samples, 15)
        print(f"mempool size after: {rpc.getmempoolinfo()['size']}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
