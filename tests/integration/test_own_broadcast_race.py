"""The gate indexes its own broadcast while the block follower's mempool pass indexes the
same transaction (PostgreSQL). Once the transaction is out, the spend must commit as sent
— its decision, its txid and its place in the velocity ledger — whatever happens to the
indexing: a deadlock on the coin rows used to roll the whole request back into a 500 with
the transaction in the mempool and the spend still `built` (seen in bench/cosign.py with
4 clients).

The follower's side is played by a second connection in the follower's order: it inserts
the transaction's change coin, then marks the spent input — which the gate holds reserved.
The gate waits on the coin first, so PostgreSQL's deadlock check aborts the gate's
statement.
"""
from __future__ import annotations

import threading

from embit.psbt import PSBT
from sqlalchemy import text

from cosigner.model import Spend
from store.session import engine_for, session_scope
from tests.api.test_policy import signed_spend, submit
from tests.api.test_signing_gate import gate_app, owner  # noqa: F401 (fixtures)
from tests.integration.test_pending_change_races import _wait_for_lock_waiter


def test_a_deadlock_while_indexing_our_broadcast_still_commits_the_spend(require_postgres, owner, chain_node,
                                                                          chain_settings):
    device, phone, account = owner
    url = chain_settings.database_url
    spend, signed = signed_spend(device, phone, account, chain_node)
    tx = PSBT.from_string(signed).tx
    txid = tx.txid().hex()                 # segwit: known before the witness
    spent = (tx.vin[0].txid.hex(), tx.vin[0].vout)
    change = next(i for i, o in enumerate(spend["outputs"]) if o.get("change"))

    follower = engine_for(url).connect()
    follower.begin()
    follower.execute(text(
        "INSERT INTO chain_coins (txid, vout, account_id, amount_sat, script, branch, index, coinbase, own_change, "
        "first_seen) VALUES (:txid, :vout, :aid, :amount, :script, 1, 0, false, true, now())"),
        {"txid": txid, "vout": change, "aid": account["account_id"], "amount": tx.vout[change].value,
         "script": tx.vout[change].script_pubkey.data})
    result: dict = {}
    gate = threading.Thread(target=lambda: result.update(answer=submit(device, spend, signed)))
    gate.start()
    _wait_for_lock_waiter(url)             # the gate waits on the change coin
    marker = threading.Thread(target=lambda: follower.execute(
        text("UPDATE chain_coins SET spent_by_txid = :txid WHERE txid = :t AND vout = :v"),
        {"txid": txid, "t": spent[0], "v": spent[1]}))
    marker.start()                         # … while holding the input the follower now waits for
    try:
        gate.join(60)
        marker.join(60)
    finally:
        follower.rollback()
        follower.close()

    status, _, body = result["answer"]
    assert status == 200, body
    assert body["state"] == "broadcast" and body["txid"] == txid
    assert txid in chain_node.rpc().getrawmempool()
    with session_scope(url) as s:
        row = s.get(Spend, spend["spend_id"])
        assert (row.state, row.txid) == ("broadcast", txid) and row.decided_at is not None
    # the follower's next pass indexes what the gate's savepoint gave up: the change is ours
    from chain.model import Coin
    from config.bootstrap import chain_follower
    chain_follower(chain_settings).run_once()
    with session_scope(url) as s:
        coin = s.get(Coin, (txid, change))
        assert coin is not None and coin.account_id == account["account_id"]
        assert s.get(Coin, spent).spent_by_txid == txid


def test_the_followers_mempool_pass_waits_for_the_gate_instead_of_failing(require_postgres, owner, chain_node,
                                                                           chain_settings):
    """The follower's side of the same race: a pass that meets our transaction while the
    gate's indexing is not committed yet marks the inputs first (so it waits for the gate,
    which holds them reserved, before it has written anything the gate needs), and leaves
    the coin the gate committed meanwhile as it is. It used to insert the coin first and
    deadlock, or fail with a duplicate coin, pass after pass under load."""
    from chain.model import Coin
    from config.bootstrap import chain_follower
    device, phone, account = owner
    url = chain_settings.database_url
    spend, signed = signed_spend(device, phone, account, chain_node)
    status, _, body = submit(device, spend, signed)
    assert status == 200
    txid = body["txid"]
    tx = PSBT.from_string(signed).tx
    spent = (tx.vin[0].txid.hex(), tx.vin[0].vout)
    change = next(i for i, o in enumerate(spend["outputs"]) if o.get("change"))
    chain_follower(chain_settings).run_once()      # caught up: the pass below only meets this transaction
    engine = engine_for(url)
    with engine.begin() as c:    # as if the gate had not committed its indexing yet
        row = dict(c.execute(text("SELECT * FROM chain_coins WHERE txid = :t AND vout = :v"),
                             {"t": txid, "v": change}).mappings().one())
        c.execute(text("DELETE FROM chain_coins WHERE txid = :t AND vout = :v"), {"t": txid, "v": change})
        c.execute(text("UPDATE chain_coins SET spent_by_txid = NULL WHERE txid = :t AND vout = :v"),
                  {"t": spent[0], "v": spent[1]})
        c.execute(text("DELETE FROM chain_mempool WHERE txid = :t"), {"t": txid})
    gate = engine.connect()
    gate.begin()
    gate.execute(text("UPDATE chain_coins SET reserved_by = :s WHERE txid = :t AND vout = :v"),
                 {"s": spend["spend_id"], "t": spent[0], "v": spent[1]})          # the gate holds the input
    result: dict = {}

    def follow():
        try:
            result["stats"] = chain_follower(chain_settings).run_once()
        except Exception as err:   # asserted below
            result["error"] = err
    follower = threading.Thread(target=follow)
    follower.start()
    try:
        _wait_for_lock_waiter(url)                               # the follower waits for the input
        columns = ", ".join(row)
        gate.execute(text(f"INSERT INTO chain_coins ({columns}) VALUES ({', '.join(':' + k for k in row)})"), row)
        gate.execute(text("UPDATE chain_coins SET spent_by_txid = :x WHERE txid = :t AND vout = :v"),
                     {"x": txid, "t": spent[0], "v": spent[1]})
        gate.execute(text("INSERT INTO chain_mempool (txid, relevant, seen_at) VALUES (:t, true, now()) "
                          "ON CONFLICT DO NOTHING"), {"t": txid})
        gate.commit()
    finally:
        gate.close()                 # never leave the transaction open behind a failure (teardown truncates)
    follower.join(60)
    assert "error" not in result, result
    with session_scope(url) as s:
        assert s.get(Coin, (txid, change)).first_seen == row["first_seen"]   # the gate's row, left as it is
        assert s.get(Coin, spent).spent_by_txid == txid
