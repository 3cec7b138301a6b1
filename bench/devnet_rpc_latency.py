"""Round-trip latency of a trivial RPC (getblockcount) through chain.rpc.BitcoinRPC,
a fresh HTTP connection per call as Custos does. Target: p50 < 2 ms."""
from devnet_benchlib import node_in_tempdir, report, timed

RUNS, CALLS = 5, 400


def main():
    node, tmp = node_in_tempdir()
    with node:
        rpc = node.rpc()
        medians = []
        for _ in range(RUNS):
            samples = [timed(rpc.getblockcount)[0] for _ in range(CALLS)]
            medians.append(sorted(samples)[len(samples) // 2])
            report("getblockcount", samples, 2)
        print(f"getblockcount median of run medians: {sorted(medians)[len(medians) // 2]:.2f} ms")
    tmp.cleanup()


if __name__ == "__main__":
    main()
