"""`python -m devnet --datadir DIR --rpcport N [...]`: run a devnet node until SIGTERM,
SIGINT or the `stop` RPC. Prints `devnet ready rpc=http://127.0.0.1:N` when listening."""
from __future__ import annotations

import argparse
import signal
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

from devnet.server import DevnetServer


def _btc_per_kvb(text: str) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount: {text}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("fee rate must be >= 0")
    return int(value * 100_000_000)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devnet", description="Local regtest node answering "
                                "Bitcoin Core's JSON-RPC (development and tests only).")
    p.add_argument("--datadir", required=True, type=Path)
    p.add_argument("--rpcport", type=int, default=18443)
    p.add_argument("--rpcbind", default="127.0.0.1")
    p.add_argument("--rpcuser")
    p.add_argument("--rpcpassword")
    p.add_argument("--automine", type=float, default=None, metavar="SECONDS",
                   help="mine a block every SECONDS when the mempool is not empty")
    p.add_argument("--fallbackfee", type=_btc_per_kvb, default=None, metavar="BTC/kvB")
    p.add_argument("--keypool", type=int, default=None)
    p.add_argument("--blockfilterindex", type=int, choices=(0, 1), default=1,
                   help="like bitcoind -blockfilterindex: 0 makes scanblocks fail as on a node without the index")
    p.add_argument("--zmqpub", default=None, metavar="tcp://HOST:PORT",
                   help="publish hashblock and sequence notifications there (bitcoind's -zmqpub*)")
    args = p.parse_args(argv)
    if (args.rpcuser is None) != (args.rpcpassword is None):
        p.error("--rpcuser and --rpcpassword go together (or neither, for a cookie file)")
    server = DevnetServer(args.datadir, args.rpcport, user=args.rpcuser, password=args.rpcpassword,
                          fallbackfee=args.fallbackfee, automine=args.automine, keypool=args.keypool,
                          host=args.rpcbind, blockfilterindex=bool(args.blockfilterindex),
                          zmqpub=args.zmqpub)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: server.request_stop())
    server.start()
    print(f"devnet ready rpc={server.url} datadir={args.datadir}", flush=True)
    while not server.wait(0.5):
        pass
    print("devnet stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
