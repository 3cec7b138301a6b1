"""The gate's preparation before the lock (cosigner.gate_prepare) cannot carry a stale
view past the lock: what changes between `prepare` and the lock is decided with the
state read under the lock. The race is made deterministic by running a second writer
(its own committed transaction) right after the real `prepare` returns."""
from __future__ import annotations

import pytest

from cosigner import gate, gate_prepare, spends
from cosigner.model import Account, Spend
from store.base import utcnow
from store.session import session_scope
from tests.api.test_policy import signed_spend, submit
from tests.api.test_signing_gate import _mempool, _state, _store_without_review, gate_app, owner  # noqa: F401 (fixtures)


@pytest.fixture
def after_prepare(monkeypatch):
    """`after_prepare(fn)`: run fn() once, right after the next gate.prepare returns."""
    todo = []
    real = gate_prepare.prepare

    def prepare_then_race(*args, **kwargs):
        prepared = real(*args, **kwargs)
        while todo:
            todo.pop()()
        return prepared

    monkeypatch.setattr(gate_prepare, "prepare", prepare_then_race)
    return todo.append


def test_a_freeze_between_prepare_and_the_lock_denies(owner, chain_node, chain_settings, after_prepare):  # noqa: F811
    device, phone, account = owner
    device.call("PUT", f"/v1/accounts/{account['account_id']}/policy", {"max_per_tx_sat": 10 ** 8})
    spend, signed = signed_spend(device, phone, account, chain_node)
    after_prepare(lambda: _store_without_review(chain_settings, account["account_id"], staff_frozen=True))
    before = _mempool(chain_node)
    status, _, body = submit(device, spend, signed)
    assert status == 422 and body["error"]["code"] == "policy_denied"
    assert {"rule": "frozen", "by": "staff"} in body["error"]["details"]["reasons"]
    assert _mempool(chain_node) == before and _state(device, spend)["state"] == "denied"


def test_a_cancel_between_prepare_and_the_lock_wins(owner, chain_node, chain_settings, after_prepare):  # noqa: F811
    """The owner cancels (another request, committed) after the phone-signed PSBT was
    prepared from the spend as read without a lock: the gate's spend row, read under the
    lock, is cancelled, so nothing is signed and the coins stay free."""
    from chain.model import Coin
    device, phone, account = owner
    spend, signed = signed_spend(device, phone, account, chain_node)

    def cancel():
        with session_scope(chain_settings.database_url) as s:
            spends.cancel(s, None, spend["spend_id"], device.device_id, utcnow())

    after_prepare(cancel)
    before = _mempool(chain_node)
    status, _, body = submit(device, spend, signed)
    assert status == 409 and body["error"]["code"] == "spend_not_open"
    assert _mempool(chain_node) == before and _state(device, spend)["state"] == "cancelled"
    with session_scope(chain_settings.database_url) as s:
        for i in spend["inputs"]:
            assert s.get(Coin, (i["txid"], i["vout"])).reserved_by is None


def test_the_unlocked_read_leaves_the_gate_no_row_to_decide_on(owner, chain_node, chain_settings):  # noqa: F811
    """`read` gives plain values and builds no Spend or Account instance: the rows the
    gate decides on exist in the session only once read under the locks."""
    device, phone, account = owner
    spend, _ = signed_spend(device, phone, account, chain_node)
    with session_scope(chain_settings.database_url) as s:
        seen, owner_row, key = gate_prepare.read(s, spend["spend_id"])
        assert (seen.id, seen.state, owner_row.id) == (spend["spend_id"], "built", account["account_id"])
        assert owner_row.owner_device_id == device.device_id and key.id == owner_row.server_key_id
        assert not [o for o in s.identity_map.values() if isinstance(o, (Spend, Account))]
        assert gate_prepare.read(s, "spend_" + "0" * 24) is None
        locked, locked_account = gate.lock_spend(s, seen.id, account_id=seen.account_id)
        assert gate_prepare.identity(locked_account) == gate_prepare.identity(owner_row)
        assert (locked.id, locked.unsigned_txid, locked.replaces_id) == (seen.id, seen.unsigned_txid, None)


def test_a_signer_change_between_prepare_and_the_lock_is_inspected_again(owner, chain_node, chain_settings,  # noqa: F811
                                                                         after_prepare, monkeypatch):
    """The account enters recovery-sweep mode after the phone-signed PSBT was prepared:
    the signer role read under the lock differs, so the prepared inspection is not used
    and the PSBT (no recovery signature) is refused; nothing is signed or broadcast."""
    from recovery.model import RecoveryAccountState
    device, phone, account = owner
    spend, signed = signed_spend(device, phone, account, chain_node)
    reinspected = []
    real_inspected = gate_prepare.inspected
    monkeypatch.setattr(gate_prepare, "inspected", lambda *a, **k: reinspected.append(a[5]) or real_inspected(*a, **k))

    def sweep_mode():
        with session_scope(chain_settings.database_url) as s:
            s.add(RecoveryAccountState(account_id=account["account_id"], mode="sweep", updated_at=utcnow()))

    after_prepare(sweep_mode)
    before = _mempool(chain_node)
    status, _, body = submit(device, spend, signed)
    assert reinspected == ["platform", "recovery"]          # prepared, then inspected again under the lock
    assert status == 422 and body["error"]["code"] == "recovery_signature_missing"
    assert _mempool(chain_node) == before and _state(device, spend)["state"] == "built"


def test_a_prepared_inspection_is_used_when_nothing_changed(owner, chain_node, monkeypatch):  # noqa: F811
    device, phone, account = owner
    spend, signed = signed_spend(device, phone, account, chain_node)
    calls = []
    real_inspected = gate_prepare.inspected
    monkeypatch.setattr(gate_prepare, "inspected", lambda *a, **k: calls.append(a[5]) or real_inspected(*a, **k))
    status, _, body = submit(device, spend, signed)
    assert status == 200 and body["state"] == "broadcast" and body["txid"] in _mempool(chain_node)
    assert calls == ["platform"]                            # once, before the lock


def test_prepared_fits_only_what_it_was_made_for():
    """Every field the preparation depends on is compared (a change of any one refuses it)."""
    from types import SimpleNamespace as NS
    account = NS(id="a", network="regtest", template="t", server_key_id="k", receive_descriptor="r",
                 change_descriptor="c", platform_key={"xpub": "p"}, recovery_key={"xpub": "q"})
    spend = NS(id="s", unsigned_txid="u")
    prepared = gate_prepare.Prepared("s", "psbt", "u", None, "platform", gate_prepare.identity(account),
                                     None, None, None, None)
    assert prepared.fits(spend, account, "psbt", "platform", None)
    assert not prepared.fits(spend, account, "other psbt", "platform", None)
    assert not prepared.fits(spend, account, "psbt", "recovery", None)
    assert not prepared.fits(spend, account, "psbt", "platform", "replaced")
    assert not prepared.fits(NS(id="s", unsigned_txid="v"), account, "psbt", "platform", None)
    assert not prepared.fits(NS(id="t", unsigned_txid="u"), account, "psbt", "platform", None)
    for field in ("network", "template", "server_key_id", "receive_descriptor", "change_descriptor",
                  "platform_key", "recovery_key"):
        assert not prepared.fits(spend, NS(**{**vars(account), field: "changed"}), "psbt", "platform", None), field
    assert gate.prepare.__doc__
