"""The signing gate records its own broadcast directly (chain.own.record_spend) instead of
through the general applier (chain.observe). The two must leave the same rows — else the
follower's next mempool pass, or a balance read before it, would see something else — and
the direct path must hand every transaction it does not fully understand to the applier.
Also the reservation renewal a cosign no longer writes. Against devnet (or a real bitcoind)."""
from __future__ import annotations

import datetime as dt

import pytest
from embit.psbt import PSBT
from sqlalchemy import select, text

from chain import own
from chain.model import AccountTx, Coin, MempoolTx, ScriptBranch, WatchedScript
from chain.observe import observe_transaction
from client.phone import PhoneWallet
from client.sdk import CustosClient, DeviceKey
from messaging.model import Notification
from store.session import session_scope
from tests.api.accounts_kit import create, fund
from tests.api.test_policy import signed_spend, submit
from tests.conftest import flask_transport

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.timezone.utc)


def _rows(s, account_ids: list[str]) -> dict:
    """Every chain-index row of these accounts (and the known mempool), comparable."""
    def table(model, where, order):
        cols = [c for c in model.__table__.columns if c.key != "id"]
        return [tuple(r) for r in s.execute(select(*cols).where(where).order_by(*order))]
    return {
        "coins": table(Coin, Coin.account_id.in_(account_ids), (Coin.txid, Coin.vout)),
        "txs": table(AccountTx, AccountTx.account_id.in_(account_ids), (AccountTx.account_id, AccountTx.txid)),
        "scripts": table(WatchedScript, WatchedScript.account_id.in_(account_ids), (WatchedScript.script,)),
        "branches": table(ScriptBranch, ScriptBranch.account_id.in_(account_ids),
                          (ScriptBranch.account_id, ScriptBranch.branch)),
        "mempool": table(MempoolTx, text("1 = 1"), (MempoolTx.txid,)),
    }


def _spend_parts(spend: dict, signed: str):
    tx = PSBT.from_string(signed).tx
    inputs = [(i["txid"], i["vout"], i["amount_sat"]) for i in spend["inputs"]]
    outputs = [(n, out.script_pubkey.data, out.value) for n, out in enumerate(tx.vout)]
    return tx, inputs, outputs


@pytest.fixture
def owner(device, chain_node, mine):
    phone = PhoneWallet()
    account = create(device, phone)
    fund(chain_node, mine, device, account, "0.3")
    fund(chain_node, mine, device, account, "0.2")
    return phone, account


def test_the_gates_record_of_its_spend_is_the_applier_s_row_for_row(device, owner, chain_node, chain_settings):
    phone, account = owner
    spend, signed = signed_spend(device, phone, account, chain_node, amount=35_000_000)   # two inputs, change
    tx, inputs, outputs = _spend_parts(spend, signed)
    txid = tx.txid().hex()
    assert len(inputs) == 2 and any(o["change"] for o in spend["outputs"])
    with session_scope(chain_settings.database_url) as s:
        before = _rows(s, [account["account_id"]])
        with s.begin_nested() as general:
            observe_transaction(s, tx.serialize().hex(), NOW)
            by_applier = _rows(s, [account["account_id"]])
            general.rollback()
        with s.begin_nested() as direct:
            own.record_spend(s, account["account_id"], txid, inputs, outputs, NOW)
            by_gate = _rows(s, [account["account_id"]])
            direct.rollback()
        s.rollback()
    assert by_gate != before
    assert by_gate == by_applier


def test_after_a_cosign_the_follower_s_mempool_pass_changes_nothing(device, owner, chain_node, chain_settings,
                                                                    follower):
    phone, account = owner
    spend, signed = signed_spend(device, phone, account, chain_node)
    status, _, body = submit(device, spend, signed)
    assert status == 200 and body["state"] == "broadcast"
    with session_scope(chain_settings.database_url) as s:
        indexed = _rows(s, [account["account_id"]])
    assert any(body["txid"] in r for r in indexed["txs"])        # recorded at once, before any pass
    follower.run_once()
    with session_scope(chain_settings.database_url) as s:
        assert _rows(s, [account["account_id"]]) == indexed
    balance = device.call("GET", f"/v1/accounts/{account['account_id']}/balance")
    assert balance["reserved_sat"] == 0


def test_a_payment_to_another_account_is_left_to_the_applier(device, owner, chain_node, chain_settings, chain_app):
    """The other account's receipt (its coin, its history row, its owner's `receive`
    push) is the applier's work: the direct path declines before writing."""
    phone, account = owner
    other = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(chain_app))
    other.register()
    payee = create(other, PhoneWallet(), name="payee")
    address = other.call("POST", f"/v1/accounts/{payee['account_id']}/addresses")["address"]
    outputs = [{"address": address, "amount_sat": 1_000_000}]
    spend = device.call("POST", f"/v1/accounts/{account['account_id']}/spends", {"outputs": outputs,
                                                                                "fee_rate_sat_vb": 2})
    signed = phone.sign(phone.verify_spend(account, spend, outputs))
    _, inputs, outs = _spend_parts(spend, signed)
    with session_scope(chain_settings.database_url) as s:
        with s.begin_nested() as sp:
            with pytest.raises(own.Declined):
                own.record_spend(s, account["account_id"], PSBT.from_string(signed).tx.txid().hex(), inputs, outs,
                                 NOW)
            sp.rollback()
        assert _receive_pushes(s, other.device_id) == 0
    status, _, body = submit(device, spend, signed)
    assert status == 200 and body["state"] == "broadcast"
    with session_scope(chain_settings.database_url) as s:      # indexed at once by the applier
        row = s.scalar(select(AccountTx).where(AccountTx.account_id == payee["account_id"],
                                               AccountTx.txid == body["txid"]))
        assert row is not None and row.state == "mempool" and row.received_sat == 1_000_000
        assert _receive_pushes(s, other.device_id) == 1


def _receive_pushes(s, device_id: str) -> int:
    return len(list(s.scalars(select(Notification.id).where(Notification.device_id == device_id,
                                                            Notification.kind == "receive"))))


def test_a_transaction_already_recorded_or_a_coin_already_spent_is_declined(device, owner, chain_node,
                                                                             chain_settings):
    phone, account = owner
    spend, signed = signed_spend(device, phone, account, chain_node)
    tx, inputs, outputs = _spend_parts(spend, signed)
    txid = tx.txid().hex()
    with session_scope(chain_settings.database_url) as s:
        with s.begin_nested() as sp:
            own.record_spend(s, account["account_id"], txid, inputs, outputs, NOW)
            with pytest.raises(own.Declined):          # the same transaction again
                with s.begin_nested():
                    own.record_spend(s, account["account_id"], txid, inputs, outputs, NOW)
            with pytest.raises(own.Declined):          # another transaction spending the same coin
                with s.begin_nested():
                    own.record_spend(s, account["account_id"], "ab" * 32, inputs, outputs, NOW)
            with pytest.raises(own.Declined):          # a coin of another account
                with s.begin_nested():
                    own.record_spend(s, "someone-else", "cd" * 32, inputs, outputs, NOW)
            sp.rollback()
        s.rollback()


def test_without_a_concurrent_writer_every_decline_comes_before_any_write(device, owner, chain_node,
                                                                         chain_settings):
    """Every reason to decline is found by record_spend's first statement, a read: with no
    other writer meanwhile (SQLite, whose one write lock the gate holds) a declined record
    has written nothing, which is why the gate runs it there without a savepoint."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    phone, account = owner
    spend, signed = signed_spend(device, phone, account, chain_node)
    tx, inputs, outputs = _spend_parts(spend, signed)
    txid, aid = tx.txid().hex(), account["account_id"]
    sent: list[str] = []

    def capture(_conn, _cursor, statement, *_args):
        sent.append(statement.lstrip().split(None, 1)[0].upper())

    with session_scope(chain_settings.database_url) as s:
        own.record_spend(s, aid, txid, inputs, outputs, NOW)
        before = _rows(s, [aid])
        event.listen(Engine, "before_cursor_execute", capture)
        try:
            for account_id, spender in ((aid, txid),              # the same transaction again
                                        (aid, "ab" * 32),         # another one spending the same coin
                                        ("someone-else", "cd" * 32)):   # a coin of another account
                with pytest.raises(own.Declined):
                    own.record_spend(s, account_id, spender, inputs, outputs, NOW)
        finally:
            event.remove(Engine, "before_cursor_execute", capture)
        assert sent == ["SELECT"] * 3
        assert _rows(s, [aid]) == before
        s.rollback()


def test_a_renewal_right_after_a_strict_reservation_writes_nothing_and_any_other_does(device, owner, chain_node,
                                                                                     chain_settings):
    """A cosign reserves its coins strictly at submit and renews them after the broadcast,
    with the same `now`: the renewal has nothing to write. A renewal in another
    transaction, in a savepoint, or to another moment still writes."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from cosigner import reservations
    from cosigner.model import Spend
    phone, account = owner
    spend, _ = signed_spend(device, phone, account, chain_node)
    seen: list[str] = []

    def capture(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("UPDATE CHAIN_COINS"):
            seen.append(statement)

    def renewals(fn) -> int:
        seen.clear()
        event.listen(Engine, "before_cursor_execute", capture)
        try:
            fn()
        finally:
            event.remove(Engine, "before_cursor_execute", capture)
        return len(seen)

    with session_scope(chain_settings.database_url) as s:
        row = s.get(Spend, spend["spend_id"])
        assert renewals(lambda: reservations.keep(s, row, NOW, 600, strict=True)) == 1
        assert renewals(lambda: reservations.keep(s, row, NOW, 600, strict=False)) == 0
        assert renewals(lambda: reservations.keep(s, row, NOW, 601, strict=False)) == 1
        with s.begin_nested():
            assert renewals(lambda: reservations.keep(s, row, NOW, 600, strict=False)) == 1
    with session_scope(chain_settings.database_url) as s:
        row = s.get(Spend, spend["spend_id"])
        assert renewals(lambda: reservations.keep(s, row, NOW, 600, strict=False)) == 1
