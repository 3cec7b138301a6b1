"""The mempool feed against the test chain (devnet, or Bitcoin Core with BITCOIND=...) and
the suite's database (PostgreSQL under CI): beat's listener (chain.zmqwake + FeedWriter)
records the node's real `sequence` notifications, and follower passes in feed mode — no
`getrawmempool` — see a payment arrive, its fee bump replace it, and the bump confirm."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from chain.derive import script_deriver
from chain.feed import FeedWriter
from chain.model import AccountTx, MempoolFeed
from chain.zmqwake import start
from store.session import session_scope
from tests.unit.chain_kit import add_account
from tests.waiting import wait_for


def _address(desc: str, i: int) -> str:
    from embit.networks import NETWORKS
    from embit.script import Script
    return Script(script_deriver(desc)(i)).address(NETWORKS["regtest"])


def _recorded(url: str, kind: str, txid: str | None = None) -> bool:
    with session_scope(url) as s:
        q = select(MempoolFeed.id).where(MempoolFeed.kind == kind)
        if txid is not None:
            q = q.where(MempoolFeed.txid == txid)
        return s.scalar(q.limit(1)) is not None


def _states(url: str, aid: str) -> dict[str, str]:
    with session_scope(url) as s:
        return {r.txid: r.state for r in s.scalars(select(AccountTx).where(AccountTx.account_id == aid))}


class Counting:
    """The node, counting the calls a pass makes."""

    def __init__(self, node):
        self.node, self.calls = node, []

    def call(self, method, *params):
        self.calls.append(method)
        return self.node.call(method, *params)

    def batch(self, calls):
        self.calls.extend(m for m, _ in calls)
        return self.node.batch(calls)


def test_feed_passes_follow_a_payment_its_bump_and_its_confirmation(chain_node, chain_settings, follower):
    url = chain_settings.database_url
    aid, receive, _ = add_account(url)
    rpc, faucet = chain_node.rpc(), chain_node.faucet
    writer = FeedWriter(url)
    thread, stop = start(chain_node.zmq_url, lambda: None, debounce=0.05, feed=writer)
    counting = Counting(follower.node)
    follower.node = counting
    try:
        def until_listening():
            faucet.sendtoaddress(faucet.getnewaddress(), Decimal("0.001"))   # any notification will do
            return _recorded(url, "G")
        wait_for(until_listening, what="the listener's first notification", timeout=20, interval=0.5)
        assert follower.run_once().mempool_mode == "full"                    # the snapshot the feed continues
        txid = faucet.sendtoaddress(_address(receive, 0), Decimal("0.02"), "", "", False, True)
        wait_for(lambda: _recorded(url, "A", txid), what="the payment's notification", timeout=20)
        counting.calls.clear()
        report = follower.run_once()
        assert report.mempool_mode == "feed" and "getrawmempool" not in counting.calls
        assert _states(url, aid) == {txid: "mempool"}
        bump = faucet.bumpfee(txid)["txid"]
        wait_for(lambda: _recorded(url, "A", bump), what="the bump's notification", timeout=20)
        assert follower.run_once().mempool_mode == "feed"
        states = _states(url, aid)
        assert states[bump] == "mempool" and states[txid] in ("replaced", "conflicted")
        rpc.generatetoaddress(1, faucet.getnewaddress())
        rpc.syncwithvalidationinterfacequeue()
        report = follower.run_once()
        assert report.mempool_mode == "feed" and report.blocks_applied == 1
        assert _states(url, aid)[bump] == "confirmed"
    finally:
        follower.node = counting.node
        stop.set()
        thread.join(timeout=5)
    assert _recorded(url, "X") and follower.run_once().mempool_mode == "full"   # the stopped listener
