"""A block follower in its own process, for the crash test: `python -m
tests.integration.follower_proc DATABASE_URL RPC_URL USER PASSWORD PAUSE_AT MARKER`.
When it is about to commit the block at height PAUSE_AT it writes MARKER and sleeps
(inside the block's transaction), so the test can kill -9 it mid-block."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import app.models  # noqa: F401  (every table, for the foreign keys)
from chain.follower import Follower
from chain.rpc import BitcoinRPC


def main(argv: list[str]) -> int:
    url, rpc_url, user, password, pause_at, marker = argv
    pause_at = int(pause_at)

    def hook(block):
        if block.height == pause_at:
            Path(marker).write_text(str(block.height))
            time.sleep(120)
    follower = Follower(BitcoinRPC(rpc_url, user, password), url, on_block_written=hook, lock_wait=60)
    follower.run_once(mempool=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
