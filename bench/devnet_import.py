"""Creating a blank watch-only wallet and importing two ranged 2-of-3 wsh(sortedmulti)
descriptors with range [0, 999] (what chain.wallets.ensure_imported does per account)."""
import os

from embit import bip32
from embit.descriptor.checksum import checksum
from embit.networks import NETWORKS

from devnet_benchlib import node_in_tempdir, report, timed

NET = NETWORKS["regtest"]
WALLETS = 8


def _descs():
    keys = []
    for _ in range(3):
        root = bip32.HDKey.from_seed(os.urandom(32), version=NET["xprv"])
        acct = root.derive("m/48h/1h/0h/2h").to_public().to_base58(NET["xpub"])
        keys.append(f"[{root.my_fingerprint.hex()}/48h/1h/0h/2h]{acct}")
    out = []
    for branch in (0, 1):
        d = f"wsh(sortedmulti(2,{','.join(k + f'/{branch}/*' for k in keys)}))"
        out.append(f"{d}#{checksum(d)}")
    return out


def main():
    node, tmp = node_in_tempdir()
    with node:
        rpc = node.rpc()
        rpc.generatetoaddress(10, "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080")
        samples = []
        for n in range(WALLETS):
            receive, change = _descs()

            def create_and_import():
                rpc.createwallet(f"acct{n}", True, True, "", False, True, True)
                node.rpc(f"acct{n}").importdescriptors([
                    {"desc": receive, "timestamp": "now", "active": True, "internal": False, "range": [0, 999]},
                    {"desc": change, "timestamp": "now", "active": True, "internal": True, "range": [0, 999]}])
            samples.append(timed(create_and_import)[0])
        report("createwallet + importdescriptors 2x[0,999]", samples)
    tmp.cleanup()


if __name__ == "__main__":
    main()
