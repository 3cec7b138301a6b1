"""A wallet with 10,000 UTXOs (0.0005–0.0104 BTC each): latency of getbalances (target < 200 ms) and
walletcreatefundedpsbt (target < 500 ms), medians over several calls."""
from decimal import Decimal

from embit.psbt import PSBT

from devnet_benchlib import faucet, node_in_tempdir, report, timed

UTXOS, PER_TX, CALLS = 10_000, 1_000, 15


def main():
    node, tmp = node_in_tempdir()
    with node:
        rpc, fw = node.rpc(), faucet(node, 120)
        rpc.createwallet("big")
        big = node.rpc("big")
        addresses = [big.getnewaddress() for _ in range(PER_TX)]
        for _ in range(UTXOS // PER_TX):
            fw.sendmany("", {a: Decimal("0.0005") + Decimal("0.0001") * (i % 100)
                             for i, a in enumerate(addresses)})
            rpc.generatetoaddress(1, fw.getnewaddress())
        print(f"wallet UTXOs: {len(big.listunspent())}")
        report("getbalances (10k UTXOs)", [timed(big.getbalances)[0] for _ in range(CALLS)], 200)
        dest = fw.getnewaddress()
        for amount in ("0.05", "0.5"):
            samples, inputs = [], 0
            for _ in range(CALLS):
                ms, funded = timed(big.walletcreatefundedpsbt, [], [{dest: Decimal(amount)}], 0, {"fee_rate": 2})
                samples.append(ms)
                inputs = len(PSBT.from_string(funded["psbt"]).inputs)
            report(f"walletcreatefundedpsbt {amount} BTC ({inputs} inputs)", samples, 500)
        report("listunspent (10k UTXOs)", [timed(big.listunspent)[0] for _ in range(3)])
    tmp.cleanup()


if __name__ == "__main__":
    main()
