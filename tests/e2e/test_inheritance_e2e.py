"""Inheritance over real HTTP against the `make run` stack (gunicorn, Celery worker and
beat, devnet) with three reference clients: the owner, the beneficiary and another
holder. Shares travel phone → holder end to end (Signal). Time passes by moving due
times and their jobs into the past in the database; beat's reconciler and the worker do
every timed step (the plan change, reminders, the release) without any test calling a
service. plan → claim → reminders → owner cancels → re-claim blocked → the block
period passes → second claim → release → the beneficiary rebuilds the key, proves it and
sweeps every coin to its own account (confirmed on devnet, balances from the chain
index; an owner freeze after the release blocks it until lifted) → the old owner's device
is refused. (Cancelling after the release, and a freeze met at signing time, are in
tests/api/test_inheritance_sweep.py.)"""
from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

from sqlalchemy import update

from client.inheritance import Claimant, InheritanceClient
from client.messaging import MessagingClient
from client.phone import PhoneWallet
from client.recovery import HeldShares, collect_shares, deliver_share
from client.sdk import ApiError, DeviceKey
from tests.api.inheritance_kit import befriend, setup_with_beneficiary


def _client(stack) -> InheritanceClient:
    c = InheritanceClient(stack.api_url, DeviceKey.generate())
    c.register()
    return c


def _wait(fn, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _db(stack):
    from config.settings import Settings
    return Settings.from_env(stack.env).database_url


def _clock(stack, subject, **values):
    """The clock moved: set the row's due times (past) and its pending jobs due now."""
    from inheritance.model import InheritanceClaim, InheritancePlanChange
    from store.base import utcnow
    from store.session import session_scope
    from workers.jobs import ScheduledJob
    past = utcnow() - dt.timedelta(seconds=1)
    model = InheritanceClaim if subject.startswith("icl_") else InheritancePlanChange
    with session_scope(_db(stack)) as s:
        s.execute(update(model).where(model.id == subject).values(**{k: past + v for k, v in values.items()}))
        s.execute(update(ScheduledJob).where(ScheduledJob.subject == subject, ScheduledJob.state == "pending")
                  .values(due_at=past))


def _clock_policy(stack, change_id):
    from cosigner.model import PolicyChange
    from store.base import utcnow
    from store.session import session_scope
    from workers.jobs import ScheduledJob
    past = utcnow() - dt.timedelta(seconds=1)
    with session_scope(_db(stack)) as s:
        s.execute(update(PolicyChange).where(PolicyChange.id == change_id).values(effective_at=past))
        s.execute(update(ScheduledJob).where(ScheduledJob.subject == change_id).values(due_at=past))


def _system(client, kind):
    msgs = MessagingClient.like(client).fetch_messages()["messages"]
    return [m["body"] for m in msgs if m.get("system") and m["body"].get("type") == kind]


def test_inheritance_claim_cancel_block_release_and_sweep(stack, stack_rpc, tmp_path):
    node, faucet = stack_rpc
    owner, ben, other = _client(stack), _client(stack), _client(stack)
    phone = PhoneWallet()
    acct = owner.call("POST", "/v1/accounts", phone.account_request("e2e-heir"))
    aid = acct["account_id"]
    for btc in ("0.3", "0.1"):
        addr = owner.call("POST", f"/v1/accounts/{aid}/addresses")["address"]
        faucet.call("sendtoaddress", addr, Decimal(btc))
    node.call("generatetoaddress", 1, faucet.call("getnewaddress"))
    _wait(lambda: owner.call("GET", f"/v1/accounts/{aid}/balance")["confirmed"] == 40_000_000, "funds")

    # contacts, the setup, and the beneficiary's share delivered phone → beneficiary end to end
    om, bm = befriend(owner, ben)
    befriend(owner, other, ma=om)
    split = setup_with_beneficiary(owner, ben.device_id, other.device_id, aid, phone, f"heir-{aid}@example.org")
    deliver_share(om, ben.device_id, aid, split.share(0, 1))
    held = HeldShares()
    assert _wait(lambda: collect_shares(bm, held), "the share message") == 1

    # plan: the beneficiary is named once the loosening delay has passed (the worker applies it)
    out = owner.set_plan(aid, [{"device_id": ben.device_id, "label": "Ben"}], 180)
    [change] = out["pending_changes"]
    _clock(stack, change["change_id"], effective_at=dt.timedelta(0))
    _wait(lambda: owner.plan(aid)["beneficiaries"], "the worker to apply the plan change")
    [named] = _wait(lambda: [b for b in _drain_system(bm) if b.get("type") == "inheritance_named"], "named")
    assert set(named) == {"v", "type", "account_id"}

    # claim 1: everyone told, reminded; the owner declines
    claimant = Claimant(ben)
    claim = claimant.start(aid)
    assert claim["state"] == "waiting"
    assert [b["claim_id"] for b in _system(owner, "inheritance_claim_started")] == [claim["claim_id"]]
    assert [b["role"] for b in _system(other, "inheritance_claim_started")] == ["holder"]
    _clock(stack, claim["claim_id"], next_reminder_at=dt.timedelta(0))
    _wait(lambda: _system(owner, "inheritance_claim_reminder"), "the worker's reminder")
    assert _wait(lambda: _system(other, "inheritance_claim_reminder"), "the holder's reminder")
    assert ben.claim(claim["claim_id"])["state"] == "waiting"
    assert owner.decline_claim(claim["claim_id"])["state"] == "cancelled"
    assert [b["claim_id"] for b in _drain_system(bm) if b.get("type") == "inheritance_declined"] == \
        [claim["claim_id"]]
    try:
        claimant.start(aid)
        raise AssertionError("a declined beneficiary claimed again at once")
    except ApiError as e:
        assert (e.status, e.code) == (409, "claim_blocked")

    # the block period passes; claim 2 waits out its time and the worker releases the share
    _clock(stack, claim["claim_id"], closed_at=-dt.timedelta(days=31))
    claimant = Claimant(ben)
    claim = claimant.start(aid)
    _clock(stack, claim["claim_id"], wait_ends_at=dt.timedelta(0), next_reminder_at=dt.timedelta(days=1))
    released = _wait(lambda: (c := ben.claim(claim["claim_id"]))["state"] == "released" and c,
                     "beat + worker to release the operator share")
    seed = claimant.rebuild(released, held.items[aid]["share"])
    assert seed.mnemonic == phone.recovery.mnemonic
    assert claimant.prove(released, seed)["proven"] is True

    # the sweep: every coin to an account the beneficiary owns, cosigned through the gate
    mine = ben.call("POST", "/v1/accounts", PhoneWallet().account_request("heir-own"))
    dest = ben.call("GET", f"/v1/accounts/{mine['account_id']}")
    # an owner freeze after the release blocks it (until the owner's unfreeze has waited out its delay)
    owner.call("POST", f"/v1/accounts/{aid}/freeze", {"frozen": True})
    try:
        claimant.sweep(claim["claim_id"], seed, dest, fee_rate=2)
        raise AssertionError("a frozen account was swept")
    except ApiError as e:
        assert (e.status, e.code) == (422, "account_frozen")
    [unfreeze] = owner.call("POST", f"/v1/accounts/{aid}/freeze", {"frozen": False})["pending_changes"]
    _clock_policy(stack, unfreeze)
    _wait(lambda: not owner.call("GET", f"/v1/accounts/{aid}/policy")["rules"].get("frozen"), "the unfreeze")
    assert owner.call("GET", f"/v1/accounts/{aid}")["account_id"] == aid          # not revoked before
    done = claimant.sweep(claim["claim_id"], seed, dest, fee_rate=2)
    assert done["state"] == "broadcast" and done["txid"] in node.call("getrawmempool")
    assert len(done["inputs"]) == 2
    node.call("generatetoaddress", 1, faucet.call("getnewaddress"))
    _wait(lambda: ben.call("GET", f"/v1/accounts/{mine['account_id']}/balance")["confirmed"] ==
          40_000_000 - done["fee_sat"], "the swept balance")
    assert ben.call("GET", f"/v1/accounts/{aid}/balance")["confirmed"] == 0
    assert ben.claim(claim["claim_id"])["state"] == "completed"
    try:
        owner.call("GET", f"/v1/accounts/{aid}")
        raise AssertionError("the old owner's device still works")
    except ApiError as e:
        assert e.code == "device_revoked"
    om.close()
    bm.close()


def _drain_system(m):
    """System message bodies from a messenger's queue (acknowledged)."""
    return [r.system for r in m.receive() if getattr(r, "system", None)]



def test_cli_inheritance_set_show_claim_status_complete_sweep(stack, stack_rpc, tmp_path):
    import json as _json
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    node, faucet = stack_rpc

    def cli(state, *args):
        proc = subprocess.run([sys.executable, "-m", "client", "--server", stack.api_url, "--state",
                               str(tmp_path / state), *args], cwd=root, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return _json.loads(proc.stdout)

    def sdk(state):
        saved = _json.loads((tmp_path / state).read_text())
        return InheritanceClient(stack.api_url, DeviceKey.from_pem(saved["key_pem"].encode()), saved["device_id"])

    cli("owner.json", "register")
    ben_id = cli("ben.json", "register")["device_id"]
    aid = cli("owner.json", "account", "create", "--name", "cli-heir")["account_id"]
    owner = sdk("owner.json")
    addr = owner.call("POST", f"/v1/accounts/{aid}/addresses")["address"]
    faucet.call("sendtoaddress", addr, Decimal("0.2"))
    node.call("generatetoaddress", 1, faucet.call("getnewaddress"))
    _wait(lambda: owner.call("GET", f"/v1/accounts/{aid}/balance")["confirmed"] == 20_000_000, "funds")
    befriend(owner, sdk("ben.json"))
    setup = cli("owner.json", "recovery", "setup", aid, "--email", f"cli-heir-{aid}@example.org", "--contact", ben_id,
                "--contact-role", "beneficiary")
    out = cli("owner.json", "inheritance", "set", aid, "--beneficiary", f"{ben_id}:Ben", "--waiting-days", "30")
    assert out["waiting_days"] == 30 and out["pending_changes"][0]["device_id"] == ben_id
    _clock(stack, out["pending_changes"][0]["change_id"], effective_at=dt.timedelta(0))
    _wait(lambda: cli("owner.json", "inheritance", "show", aid)["beneficiaries"], "the plan change")
    claim = cli("ben.json", "inheritance", "claim", aid)
    assert cli("ben.json", "inheritance", "status")["state"] == "waiting"
    _clock(stack, claim["claim_id"], wait_ends_at=dt.timedelta(0), next_reminder_at=dt.timedelta(days=1))
    _wait(lambda: cli("ben.json", "inheritance", "status")["state"] == "released", "the release")
    assert cli("ben.json", "inheritance", "complete", "--share", setup["contact_share"])["proven"] is True
    dest = cli("ben.json", "account", "create", "--name", "heir-own")["account_id"]
    done = cli("ben.json", "inheritance", "sweep", dest, "--fee-rate", "2")
    assert done["state"] == "broadcast" and done["txid"] in node.call("getrawmempool")
