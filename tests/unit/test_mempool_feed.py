"""The follower's mempool feed (chain.feed): once a listener's notifications are recorded,
a pass applies only what changed, without `getrawmempool`, and ends with the same index as
a snapshot pass. Anything that breaks the chain of notifications (no listener, a gap, a
stop, another listener run, a backlog, an old snapshot, a reorg) makes the pass take a
snapshot again. A fake node (tests/unit/chain_kit.py) plays bitcoind and numbers its
notifications as Core does; the databases are scratch SQLite files."""
from __future__ import annotations

import datetime as dt
import os
import time

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from sqlalchemy import select

from chain import feed
from chain.derive import script_deriver
from chain.feed import FeedWriter, Plan
from chain.follower import Follower
from chain.model import AccountTx, Coin, MempoolCursor, MempoolFeed, MempoolTx
from chain.zmqwake import Notification
from store.session import session_scope
from tests.unit.chain_kit import FakeNode, add_account, foreign_script, sqlite_url, tx


class Clock:
    def __init__(self):
        self.now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)

    def __call__(self):
        self.now += dt.timedelta(seconds=1)
        return self.now


def make(url, node):
    return Follower(node, url, start_height=0, clock=Clock())


def pump(node: FakeNode, writer: FeedWriter, *, gap: bool = False) -> None:
    """What the listener records: the node's notifications since the last pump."""
    assert writer.record(node.drain(), gap)


def rows(url, model, *where):
    with session_scope(url) as s:
        return list(s.scalars(select(model).where(*where)))


def state(url, txid):
    return {r.txid: r.state for r in rows(url, AccountTx)}.get(txid)


def listening(tmp_path):
    """(url, account receive descriptor, node, follower, writer) with the cursor already
    handed to the writer's listener run."""
    url = sqlite_url(tmp_path)
    _aid, receive, _change = add_account(url)
    node = FakeNode()
    f, writer = make(url, node), FeedWriter(url)
    assert f.run_once().mempool_mode == "full"            # no listener yet
    pump(node, writer, gap=True)                          # the listener's first message
    assert f.run_once().mempool_mode == "full"            # the snapshot that the feed continues
    return url, receive, node, f, writer


def pay(receive, i, value=70_000):
    return tx([(os.urandom(32).hex(), 0, value + 10_000, foreign_script())], [(value, script_deriver(receive)(i))])


def test_feed_mode_applies_what_changed_without_reading_the_mempool(tmp_path):
    url, receive, node, f, writer = listening(tmp_path)
    incoming = pay(receive, 0)
    node.broadcast(incoming)
    pump(node, writer)
    node.calls.clear()
    report = f.run_once()
    assert (report.mempool_mode, report.mempool_new) == ("feed", 1)
    assert "getrawmempool" not in node.calls and state(url, incoming["txid"]) == "mempool"
    node.evict(incoming["txid"])                          # expired, evicted: an R notification
    pump(node, writer)
    report = f.run_once()
    assert (report.mempool_mode, report.mempool_gone) == ("feed", 1)
    assert state(url, incoming["txid"]) == "conflicted" and rows(url, MempoolTx) == []
    mined = pay(receive, 1)
    node.broadcast(mined)
    pump(node, writer)
    f.run_once()
    node.mine()                                           # a mined removal sends no notification
    report = f.run_once()
    assert report.mempool_mode == "feed" and state(url, mined["txid"]) == "confirmed"
    assert rows(url, MempoolTx) == [] and rows(url, MempoolFeed) == []
    node.calls.clear()
    assert f.run_once().mempool_mode == "feed" and node.calls == ["getbestblockhash"]   # idle


def test_a_removal_notification_drops_our_transaction_only_on_the_nodes_word(tmp_path):
    url, receive, node, f, writer = listening(tmp_path)
    incoming = pay(receive, 0)
    node.broadcast(incoming)
    pump(node, writer)
    f.run_once()
    forged = Notification("sequence", incoming["txid"], "R", node.sequence)   # still in the node's mempool
    assert writer.record([forged], False)
    report = f.run_once()
    assert (report.mempool_mode, report.mempool_gone) == ("feed", 0)
    assert state(url, incoming["txid"]) == "mempool"


def test_without_a_listener_every_pass_takes_a_snapshot_and_an_idle_one_writes_nothing(tmp_path):
    url = sqlite_url(tmp_path)
    node = FakeNode()
    f = make(url, node)
    node.mine([])
    for _ in range(3):
        node.calls.clear()
        assert f.run_once().mempool_mode == "full" and node.calls[0] == "getrawmempool"
    [cursor] = rows(url, MempoolCursor)
    synced = cursor.synced_at
    f.run_once()
    assert rows(url, MempoolCursor)[0].synced_at == synced and cursor.listener is None


def test_a_gap_a_stop_or_another_listener_takes_a_snapshot(tmp_path):
    url, receive, node, f, writer = listening(tmp_path)
    pump(node, writer, gap=True)                          # messages lost
    assert f.run_once().mempool_mode == "full"
    assert f.run_once().mempool_mode == "feed"            # the snapshot continues the same run
    other = FeedWriter(url)                               # beat restarted: a new run
    pump(node, other, gap=True)
    node.broadcast(pay(receive, 0))
    pump(node, writer)                                    # a late batch of the old run
    assert f.run_once().mempool_mode == "full"
    assert rows(url, MempoolCursor)[0].listener == other.listener
    pump(node, writer)
    assert writer.record([], False)
    assert f.run_once().mempool_mode == "feed"
    assert other.stopped()
    assert f.run_once().mempool_mode == "full"
    assert rows(url, MempoolCursor)[0].listener is None
    assert f.run_once().mempool_mode == "full"            # nobody listens any more


def test_an_old_snapshot_a_backlog_or_a_reorg_takes_a_snapshot(tmp_path, monkeypatch):
    url, receive, node, f, writer = listening(tmp_path)
    f.clock.now += feed.FULL_EVERY
    assert f.run_once().mempool_mode == "full"
    assert f.run_once().mempool_mode == "feed"
    monkeypatch.setattr(feed, "MAX_ROWS", 2)
    for i in range(3):
        node.broadcast(pay(receive, i))
    pump(node, writer)
    report = f.run_once()
    assert (report.mempool_mode, report.mempool_new) == ("full", 3)
    monkeypatch.setattr(feed, "MAX_ROWS", 20_000)
    node.mine()
    assert f.run_once().mempool_mode == "feed"
    fork = node.mine([], parent=node.active[-2])          # as long as the tip: not the best yet
    node.mine([], parent=fork)                            # longer: the tip is orphaned
    node.calls.clear()
    report = f.run_once()
    assert report.blocks_undone == 1 and report.mempool_mode == "full" and "getrawmempool" in node.calls


class ArrivingDuringThePass(FakeNode):
    """A node where, once, a payment arrives (and is recorded) while a pass follows
    blocks, and that pass is slow."""

    def __init__(self):
        super().__init__()
        self.arrival = None

    def rpc_getbestblockhash(self):
        if self.arrival is not None:
            payment, writer, self.arrival = *self.arrival, None
            self.broadcast(payment)
            pump(self, writer)
            time.sleep(0.3)
        return super().rpc_getbestblockhash()


def test_a_long_woken_pass_is_followed_by_one_that_picks_up_what_came_meanwhile(tmp_path):
    url = sqlite_url(tmp_path)
    _aid, receive, _change = add_account(url)
    node = ArrivingDuringThePass()
    f, writer = make(url, node), FeedWriter(url)
    f.run_once()
    pump(node, writer, gap=True)
    f.run_once()
    assert [r.mempool_mode for r in f.run_woken(lock_wait=0.25)] == ["feed"]     # a quick pass: one
    payment = pay(receive, 0)
    node.arrival = (payment, writer)
    node.mine([])
    reports = f.run_woken(lock_wait=0.25)
    assert [(r.blocks_applied, r.mempool_new) for r in reports] == [(1, 0), (0, 1)]
    assert state(url, payment["txid"]) == "mempool"


def test_changes_keep_each_txids_last_word_and_skip_what_the_snapshot_has():
    p = Plan("feed", "feed", 6, "run", baseline=10, rows=[
        (1, "A", "aa", 9),            # numbered below the snapshot: already in it
        (2, "A", "bb", 10), (3, "R", "bb", 11),
        (4, "R", "cc", 12), (5, "A", "cc", 13),
        (6, "A", "dd", 14)])
    assert feed.changes(p) == (["cc", "dd"], ["bb"])


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["pay", "foreign", "spend", "replace", "evict", "mine", "mine_some"]),
                min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_the_feed_and_the_snapshot_build_the_same_index(tmp_path_factory, ops, rnd):
    dbs = [sqlite_url(tmp_path_factory.mktemp("full")), sqlite_url(tmp_path_factory.mktemp("feed"))]
    descs = add_account(dbs[0])[1:]
    add_account(dbs[1], descs)
    receive, change = descs
    node = FakeNode()
    full, fed, writer = make(dbs[0], node), make(dbs[1], node), FeedWriter(dbs[1])
    node.mine([pay(receive, 0, 900_000), pay(receive, 1, 800_000)])
    for f in (full, fed):
        f.run_once()
    pump(node, writer, gap=True)
    fed.run_once()
    n = 2
    for op in ops:
        ours = [c for c in rows(dbs[0], Coin, Coin.spent_by_txid.is_(None))]
        if op == "pay":
            node.broadcast(pay(receive, n))
            n += 1
        elif op == "foreign":
            node.broadcast(tx([(os.urandom(32).hex(), 0, 5_000, foreign_script())], [(4_000, foreign_script())]))
        elif op == "spend" and ours:
            coin = rnd.choice(ours)
            value = coin.amount_sat
            node.broadcast(tx([(coin.txid, coin.vout, value, coin.script)],
                              [(value // 2, foreign_script()), (value // 4, script_deriver(change)(n))]))
            n += 1
        elif op == "replace" and node.mempool:
            old = node.mempool[rnd.choice(sorted(node.mempool))]
            for t in [t for t in node.mempool.values() if any(i["txid"] == old["txid"] for i in t["vin"])]:
                node.evict(t["txid"])             # its children go with it
            node.evict(old["txid"])
            inputs = [(i["txid"], i["vout"], int(i["prevout"]["value"] * 100_000_000),
                       bytes.fromhex(i["prevout"]["scriptPubKey"]["hex"])) for i in old["vin"]]
            value = sum(v for _, _, v, _ in inputs)
            node.broadcast(tx(inputs, [(value // 3, foreign_script())]))
        elif op == "evict" and node.mempool:
            node.evict(rnd.choice(sorted(node.mempool)))
        elif op == "mine":
            node.mine()
        elif op == "mine_some" and node.mempool:
            node.mine([node.mempool[rnd.choice(sorted(node.mempool))]])
        pump(node, writer)
        full.run_once()
        assert fed.run_once().mempool_mode == "feed"
        assert _index(dbs[0]) == _index(dbs[1]), op


def _index(url):
    return ({(r.txid, r.state, r.replaced_by, r.block_height) for r in rows(url, AccountTx)},
            {(c.txid, c.vout, c.spent_by_txid, c.block_height) for c in rows(url, Coin)},
            {r.txid for r in rows(url, MempoolTx)})
