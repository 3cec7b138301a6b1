"""The chain index on its own: matching a block against the script table, spends and
fees, gap refill, idempotent re-application, reorg undo, the mempool diff (new,
replaced, conflicted, left), and the idle pass. A fake node (tests/unit/chain_kit.py)
plays bitcoind; the database is a scratch SQLite file."""
from __future__ import annotations

import datetime as dt
import os

import pytest
from sqlalchemy import func, select

from chain import coins, scripts
from chain.derive import script_deriver
from chain.follower import Follower
from chain.model import GAP_LIMIT, AccountTx, ChainBlock, Coin, ScriptBranch, WatchedScript
from store.session import session_scope
from tests.unit.chain_kit import FakeNode, add_account, foreign_script, sqlite_url, tx

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)


@pytest.fixture
def db(tmp_path):
    return sqlite_url(tmp_path)


def spk(desc: str, i: int) -> bytes:
    return script_deriver(desc)(i)


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, session, events, tip, now):
        self.events.extend(events)


def follower(url, node, **kw) -> tuple[Follower, Recorder]:
    rec = Recorder()
    f = Follower(node, url, listeners=(rec,), start_height=0, clock=lambda: dt.datetime.now(dt.timezone.utc), **kw)
    return f, rec


def rows(url, model, *where):
    with session_scope(url) as s:
        return list(s.scalars(select(model).where(*where)))


def test_registration_watches_gap_limit_scripts_per_branch(db):
    aid, receive, change = add_account(db)
    with session_scope(db) as s:
        n = s.scalar(select(func.count()).select_from(WatchedScript).where(WatchedScript.account_id == aid))
        branches = {b.branch: b.derived_to for b in s.scalars(select(ScriptBranch).where(ScriptBranch.account_id == aid))}
    assert n == 2 * GAP_LIMIT and branches == {0: GAP_LIMIT - 1, 1: GAP_LIMIT - 1}


def test_a_block_is_matched_spent_and_refilled(db):
    aid, receive, change = add_account(db)
    other, o_recv, _ = add_account(db)
    node = FakeNode()
    f, rec = follower(db, node)
    pay = tx([(os.urandom(32).hex(), 0, 2_000_000, foreign_script())],
             [(1_000_000, spk(receive, 15)), (300_000, spk(o_recv, 0)), (690_000, foreign_script())])
    noise = tx([(os.urandom(32).hex(), 1, 5_000, foreign_script())], [(4_000, foreign_script())])
    node.mine([pay, noise])
    report = f.run_once()
    assert report.blocks_applied == 2 and report.tip_height == 1  # genesis + the block
    mine = rows(db, Coin, Coin.account_id == aid)
    assert [(c.txid, c.vout, c.amount_sat, c.branch, c.index, c.block_height) for c in mine] == \
        [(pay["txid"], 0, 1_000_000, 0, 15, 1)]
    assert len(rows(db, Coin, Coin.account_id == other)) == 1
    with session_scope(db) as s:
        branch = s.get(ScriptBranch, (aid, 0))
        assert (branch.highest_used, branch.derived_to) == (15, 15 + GAP_LIMIT)
        assert scripts.highest_used(s, aid, 1) is None
    seen = [(e.kind, e.account_id, e.direction, e.new_state) for e in rec.events]
    assert ("tx_seen", aid, "receive", "confirmed") in seen and ("tx_seen", other, "receive", "confirmed") in seen
    # spend it: 1 input ours, change back to us, the rest paid away
    spend = tx([(pay["txid"], 0, 1_000_000, spk(receive, 15))], [(600_000, foreign_script()), (399_000, spk(change, 0))])
    node.mine([spend])
    f.run_once()
    with session_scope(db) as s:
        spent = s.get(Coin, (pay["txid"], 0))
        assert (spent.spent_by_txid, spent.spent_height) == (spend["txid"], 2)
        change_coin = s.get(Coin, (spend["txid"], 1))
        assert change_coin.own_change and change_coin.amount_sat == 399_000
        row = s.scalar(select(AccountTx).where(AccountTx.account_id == aid, AccountTx.txid == spend["txid"]))
        assert (row.sent_sat, row.received_sat, row.net_sat, row.fee_sat) == (1_000_000, 399_000, -601_000, 1_000)
        assert coins.balance(s, aid, NOW)["confirmed"] == 399_000
        page, more = coins.history(s, aid)
        assert [(p["direction"], p["amount_sat"], p["fee_sat"], p["block_height"]) for p in page] == \
            [("send", 600_000, 1_000, 2), ("receive", 1_000_000, None, 1)] and not more


def test_applying_a_block_twice_changes_nothing(db):
    aid, receive, _ = add_account(db)
    node = FakeNode()
    f, _ = follower(db, node)
    pay = tx([(os.urandom(32).hex(), 0, 50_000, foreign_script())], [(40_000, spk(receive, 0))])
    h = node.mine([pay])
    f.run_once()
    from chain.txdata import block_from_json
    block = block_from_json(node.rpc_getblock(h, 3))
    f.apply_block(block, account_filter=aid)          # a restore overlapping the follower
    assert len(rows(db, Coin)) == 1 and len(rows(db, AccountTx)) == 1
    with session_scope(db) as s:
        assert s.scalar(select(func.count()).select_from(ChainBlock)) == 2


def test_reorg_undoes_orphaned_blocks_and_follows_the_new_branch(db):
    aid, receive, _ = add_account(db)
    node = FakeNode()
    f, rec = follower(db, node)
    base = node.mine([])
    f.run_once()
    pay = tx([(os.urandom(32).hex(), 0, 70_000, foreign_script())], [(60_000, spk(receive, 0))])
    orphan = node.mine([pay])
    f.run_once()
    assert rows(db, Coin)[0].block_hash == orphan
    # a longer branch from `base` without the payment; the payment is back in the mempool
    b1 = node.mine([], parent=base)
    node.mine([], parent=b1)
    node.broadcast(pay)
    report = f.run_once()
    assert report.blocks_undone == 1 and report.blocks_applied == 2
    coin = rows(db, Coin)[0]
    assert coin.block_hash is None and coin.block_height is None        # unconfirmed again
    txrow = rows(db, AccountTx)[0]
    assert txrow.state == "mempool" and txrow.block_height is None
    assert ("confirmed", "mempool") in [(e.old_state, e.new_state) for e in rec.events]
    with session_scope(db) as s:
        assert coins.balance(s, aid, NOW)["untrusted_pending"] == 60_000
        assert [b.hash for b in s.scalars(select(ChainBlock).order_by(ChainBlock.height))][-2:] == \
            [b1, node.active[-1]]
    # it confirms again on the new branch
    node.mine()
    f.run_once()
    assert rows(db, AccountTx)[0].state == "confirmed"


def test_reorg_that_drops_a_payment_for_good_marks_it_conflicted(db):
    aid, receive, _ = add_account(db)
    node = FakeNode()
    f, _ = follower(db, node)
    base = node.mine([])
    f.run_once()
    pay = tx([(os.urandom(32).hex(), 0, 70_000, foreign_script())], [(60_000, spk(receive, 0))])
    node.mine([pay])
    f.run_once()
    fork = node.mine([], parent=base)
    node.mine([], parent=fork)                         # longer; the payment never returns to the mempool
    f.run_once()
    f.run_once()                                       # the next pass sees it gone
    assert rows(db, AccountTx)[0].state == "conflicted"
    assert rows(db, Coin) == []


def test_mempool_diff_new_replaced_and_left(db):
    aid, receive, change = add_account(db)
    node = FakeNode()
    f, rec = follower(db, node)
    fund = tx([(os.urandom(32).hex(), 0, 1_000_000, foreign_script())], [(900_000, spk(receive, 0))])
    node.mine([fund])
    f.run_once()
    first = tx([(fund["txid"], 0, 900_000, spk(receive, 0))], [(500_000, foreign_script()), (399_000, spk(change, 0))])
    node.broadcast(first)
    report = f.run_once()
    assert report.mempool_new == 1
    with session_scope(db) as s:
        assert s.get(Coin, (fund["txid"], 0)).spent_by_txid == first["txid"]
        assert coins.balance(s, aid, NOW) == {"confirmed": 0, "trusted_pending": 399_000, "untrusted_pending": 0,
                                              "immature": 0, "reserved_sat": 0}
        assert s.scalar(select(AccountTx.fee_sat).where(AccountTx.txid == first["txid"])) == 1_000
    # an RBF replacement of the same coin
    node.evict(first["txid"])
    second = tx([(fund["txid"], 0, 900_000, spk(receive, 0))], [(500_000, foreign_script()), (390_000, spk(change, 1))])
    node.broadcast(second)
    f.run_once()
    states = {r.txid: (r.state, r.replaced_by) for r in rows(db, AccountTx)}
    assert states[first["txid"]] == ("replaced", second["txid"]) and states[second["txid"]] == ("mempool", None)
    with session_scope(db) as s:
        assert s.get(Coin, (first["txid"], 1)) is None
        assert s.get(Coin, (fund["txid"], 0)).spent_by_txid == second["txid"]
    # an incoming payment that leaves the mempool unconfirmed
    incoming = tx([(os.urandom(32).hex(), 0, 80_000, foreign_script())], [(70_000, spk(receive, 1))])
    node.broadcast(incoming)
    f.run_once()
    node.evict(incoming["txid"])
    f.run_once()
    assert {r.txid: r.state for r in rows(db, AccountTx)}[incoming["txid"]] == "conflicted"
    assert rows(db, Coin, Coin.txid == incoming["txid"]) == []
    kinds = [(e.txid, e.new_state) for e in rec.events]
    assert (first["txid"], "replaced") in kinds and (incoming["txid"], "conflicted") in kinds


def test_a_confirmed_double_spend_conflicts_the_unconfirmed_spend(db):
    aid, receive, change = add_account(db)
    node = FakeNode()
    f, _ = follower(db, node)
    fund = tx([(os.urandom(32).hex(), 0, 1_000_000, foreign_script())], [(900_000, spk(receive, 0))])
    node.mine([fund])
    ours = tx([(fund["txid"], 0, 900_000, spk(receive, 0))], [(899_000, foreign_script())])
    node.broadcast(ours)
    f.run_once()
    theirs = tx([(fund["txid"], 0, 900_000, spk(receive, 0))], [(880_000, foreign_script())])
    node.evict(ours["txid"])
    node.mine([theirs])
    f.run_once()
    states = {r.txid: r.state for r in rows(db, AccountTx)}
    assert states[theirs["txid"]] == "confirmed" and states[ours["txid"]] in ("replaced", "conflicted")
    with session_scope(db) as s:
        assert s.get(Coin, (fund["txid"], 0)).spent_by_txid == theirs["txid"]


def test_idle_pass_costs_two_rpcs_whatever_the_accounts(db):
    for _ in range(30):
        add_account(db)
    node = FakeNode()
    f, _ = follower(db, node)
    node.mine([])
    f.run_once()
    node.calls.clear()
    f.run_once()
    assert node.calls == ["getrawmempool", "getbestblockhash"]


def test_deep_after_six_confirmations(db):
    aid, receive, _ = add_account(db)
    node = FakeNode()
    f, rec = follower(db, node)
    node.mine([tx([(os.urandom(32).hex(), 0, 9_000, foreign_script())], [(8_000, spk(receive, 0))])])
    f.run_once()
    for _ in range(4):
        node.mine([])
    f.run_once()
    assert rows(db, AccountTx)[0].state == "confirmed"
    node.mine([])
    f.run_once()
    assert rows(db, AccountTx)[0].state == "deep"
    assert ("confirmed", "deep") in [(e.old_state, e.new_state) for e in rec.events]


def test_take_index_derives_ahead_and_reservations_hide_coins(db):
    aid, receive, change = add_account(db)
    with session_scope(db) as s:
        index, script = scripts.take_index(s, aid, 1)
        assert (index, script) == (0, spk(change, 0))
        for _ in range(GAP_LIMIT + 3):
            index, script = scripts.take_index(s, aid, 1)
        assert s.get(WatchedScript, script).index == index
    node = FakeNode()
    f, _ = follower(db, node)
    pay = tx([(os.urandom(32).hex(), 0, 90_000, foreign_script())], [(40_000, spk(receive, 0)), (40_000, spk(receive, 1))])
    node.mine([pay])
    f.run_once()
    with session_scope(db) as s:
        assert len(coins.spendable(s, aid, NOW)) == 2
        coins.reserve(s, [(pay["txid"], 0)], "spend_x", NOW + dt.timedelta(minutes=15), NOW)
        assert [c.vout for c in coins.spendable(s, aid, NOW)] == [1]
        assert coins.balance(s, aid, NOW)["reserved_sat"] == 40_000
        with pytest.raises(coins.CoinUnavailable):
            coins.reserve(s, [(pay["txid"], 0)], "spend_y", NOW + dt.timedelta(minutes=15), NOW)
        later = NOW + dt.timedelta(minutes=16)
        assert len(coins.spendable(s, aid, later)) == 2              # the reservation expired
        assert coins.release(s, "spend_x") == 1


def test_observe_transaction_marks_inputs_spent_at_once(db):
    from embit.script import Script
    from embit.transaction import Transaction, TransactionInput, TransactionOutput
    from chain.model import MempoolTx
    from chain.observe import observe_transaction
    aid, receive, change = add_account(db)
    node = FakeNode()
    f, _ = follower(db, node)
    fund = tx([(os.urandom(32).hex(), 0, 100_000, foreign_script())], [(90_000, spk(receive, 0))])
    node.mine([fund])
    f.run_once()
    raw = Transaction(version=2, vin=[TransactionInput(bytes.fromhex(fund["txid"]), 0)],
                      vout=[TransactionOutput(50_000, Script(foreign_script())),
                            TransactionOutput(39_000, Script(spk(change, 0)))])
    with session_scope(db) as s:
        assert observe_transaction(s, raw.serialize().hex(), NOW) == 1
        assert observe_transaction(s, raw.serialize().hex(), NOW) == 0            # idempotent
    with session_scope(db) as s:
        assert s.get(Coin, (fund["txid"], 0)).spent_by_txid == raw.txid().hex()
        assert coins.balance(s, aid, NOW)["trusted_pending"] == 39_000
        assert s.get(MempoolTx, raw.txid().hex()) is not None
        assert s.scalar(select(AccountTx.fee_sat).where(AccountTx.txid == raw.txid().hex())) == 1_000
    with pytest.raises(ValueError):
        with session_scope(db) as s:
            observe_transaction(s, "00ff", NOW)
