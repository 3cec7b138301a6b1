"""The block follower against real PostgreSQL and the test chain: two followers at once
(one leader works, the other waits and finds nothing left), and a follower killed with
SIGKILL in the middle of a block (the restarted one resumes: every block once, every
payment once)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from chain.derive import script_deriver
from chain.follower import Follower
from chain.model import AccountTx, ChainBlock, Coin
from store.session import session_scope
from tests.unit.chain_kit import add_account

ROOT = Path(__file__).resolve().parents[2]


def address(desc: str, i: int) -> str:
    from embit.networks import NETWORKS
    from embit.script import Script
    return Script(script_deriver(desc)(i)).address(NETWORKS["regtest"])


def pay_in_blocks(chain_node, receive: str, n: int) -> list[str]:
    """One payment to the account in each of `n` new blocks; returns the txids."""
    rpc, txids = chain_node.rpc(), []
    for i in range(n):
        txids.append(chain_node.faucet.sendtoaddress(address(receive, i), Decimal("0.01")))
        rpc.generatetoaddress(1, chain_node.faucet.getnewaddress())
    return txids


def counts(url: str, aid: str) -> tuple[int, int, list[int]]:
    with session_scope(url) as s:
        n_coins = s.scalar(select(func.count()).select_from(Coin).where(Coin.account_id == aid))
        n_txs = s.scalar(select(func.count()).select_from(AccountTx).where(AccountTx.account_id == aid))
        heights = list(s.scalars(select(ChainBlock.height).order_by(ChainBlock.height)))
    return n_coins, n_txs, heights


def test_two_followers_at_once_one_leader_works(require_postgres, chain_node, chain_settings, follower):
    url = chain_settings.database_url
    aid, receive, _ = add_account(url)
    start = chain_node.rpc().getblockcount()
    txids = pay_in_blocks(chain_node, receive, 6)
    applied_by: dict[int, list[int]] = {0: [], 1: []}

    def hooked(n):
        def hook(block):
            applied_by[n].append(block.height)
            time.sleep(0.05)             # keep the leader busy long enough for the other to arrive
        return hook
    followers = [Follower(chain_node.rpc(), url, lock_wait=30, on_block_written=hooked(n)) for n in (0, 1)]
    reports = [None, None]
    barrier = threading.Barrier(2)

    def run(n):
        barrier.wait()
        reports[n] = followers[n].run_once(mempool=False)
    threads = [threading.Thread(target=run, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(r.blocks_applied for r in reports) == [0, 6]      # the second waited, then found the tip
    assert sorted(applied_by[0] + applied_by[1]) == list(range(start + 1, start + 7))
    n_coins, n_txs, heights = counts(url, aid)
    assert (n_coins, n_txs) == (len(txids), len(txids))
    assert heights == sorted(set(heights)) and heights[-1] == start + 6


def test_kill_9_mid_block_then_restart_loses_and_doubles_nothing(require_postgres, chain_node, chain_settings,
                                                                  follower, tmp_path):
    url = chain_settings.database_url
    aid, receive, _ = add_account(url)
    start = chain_node.rpc().getblockcount()
    txids = pay_in_blocks(chain_node, receive, 5)
    marker = tmp_path / "paused"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.integration.follower_proc", url, chain_node.url,
                             chain_node.user, chain_node.password, str(start + 3), str(marker)], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert proc.poll() is None, "the follower process exited early"
            assert time.monotonic() < deadline, "the follower never reached the block"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)       # in the middle of block start+3's transaction
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    n_coins, _, heights = counts(url, aid)
    assert heights[-1] == start + 2 and n_coins == 2          # blocks +1, +2 committed; +3 rolled back
    report = Follower(chain_node.rpc(), url, lock_wait=30).run_once(mempool=False)
    assert report.blocks_applied == 3
    n_coins, n_txs, heights = counts(url, aid)
    assert (n_coins, n_txs) == (len(txids), len(txids))
    assert heights == list(range(heights[0], start + 6))      # contiguous, each once


def test_a_woken_pass_does_not_wait_for_a_long_leader(require_postgres, chain_settings, follower):
    """Another leader holds the lock: a woken pass gives up after its quarter second
    (busy, nothing done), where a scheduled one would wait its lock_wait."""
    from sqlalchemy import text
    from chain.follower import LEADER_LOCK_KEY
    with follower.engine.connect() as other:
        assert other.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK_KEY}).scalar()
        try:
            reports = follower.run_woken(lock_wait=0.25)
            assert [r.busy for r in reports] == [True] and reports[0].mempool_mode is None
        finally:
            other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LEADER_LOCK_KEY})
    assert [r.busy for r in follower.run_woken(lock_wait=0.25)] == [False]
