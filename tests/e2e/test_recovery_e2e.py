"""Social recovery over real HTTP against the `make run` stack (gunicorn, Celery worker and
beat, devnet): old phone + contact + new phone. The security delay passes by moving the
case's deadline and its job into the past in the database (the clock moved); beat's
reconciler and the worker then release the operator share without any test calling a
service. The new phone combines the shares, completes, and sweeps every UTXO."""
from __future__ import annotations

import datetime as dt
import re
import time
from decimal import Decimal

from sqlalchemy import update

from client.phone import PhoneWallet
from client.recovery import Recoverer, RecoveryClient, approve, setup_body, sign_sweep, split_recovery
from client.sdk import ApiError, DeviceKey


def _client(stack) -> RecoveryClient:
    c = RecoveryClient(stack.api_url, DeviceKey.generate())
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


def _settings(stack):
    from config.settings import Settings
    return Settings.from_env(stack.env)


def _otp(stack, email):
    from cosigner.vault import keyring_from_settings
    from recovery.mailer import read_outbox
    from recovery.secrets_box import email_hash, email_key
    from store.session import session_scope
    s = _settings(stack)
    with session_scope(s.database_url) as session:
        mails = read_outbox(session, keyring_from_settings(s), email_hash(email_key(s.secret_key), email), "recovery_otp")
    return re.search(r"Code: (\d{6})", mails[-1].body).group(1)


def _clock_passes_delay(stack, case_id):
    from recovery.model import RecoveryCase
    from store.base import utcnow
    from store.session import session_scope
    from workers.jobs import ScheduledJob
    past = utcnow() - dt.timedelta(seconds=1)
    with session_scope(_settings(stack).database_url) as s:
        case = s.get(RecoveryCase, case_id)
        shift = case.delay_ends_at - past
        s.execute(update(RecoveryCase).where(RecoveryCase.id == case_id).values(
            delay_ends_at=past, next_reminder_at=case.next_reminder_at - shift, expires_at=case.expires_at - shift))
        s.execute(update(ScheduledJob).where(ScheduledJob.subject == case_id, ScheduledJob.state == "pending")
                  .values(due_at=past))


def _clock_passes_change(stack, change_id):
    """A setup replacement's delay passed: its effective time and its job are due now."""
    from recovery.model import RecoverySetupChange
    from store.base import utcnow
    from store.session import session_scope
    from workers.jobs import ScheduledJob
    past = utcnow() - dt.timedelta(seconds=1)
    with session_scope(_settings(stack).database_url) as s:
        s.execute(update(RecoverySetupChange).where(RecoverySetupChange.id == change_id).values(effective_at=past))
        s.execute(update(ScheduledJob).where(ScheduledJob.subject == change_id, ScheduledJob.state == "pending")
                  .values(due_at=past))


def test_recovery_and_sweep_over_http(stack, stack_rpc):
    node, faucet = stack_rpc
    old, contact, new = _client(stack), _client(stack), _client(stack)
    phone = PhoneWallet()
    acct = old.call("POST", "/v1/accounts", phone.account_request("e2e-recover"))
    aid = acct["account_id"]
    for btc in ("0.25", "0.15"):
        addr = old.call("POST", f"/v1/accounts/{aid}/addresses")["address"]
        faucet.call("sendtoaddress", addr, Decimal(btc))
    node.call("generatetoaddress", 1, faucet.call("getnewaddress"))
    _wait(lambda: old.call("GET", f"/v1/accounts/{aid}/balance")["confirmed"] == 40_000_000, "funds")
    email = f"e2e-{aid}@example.org"
    split = split_recovery(phone)
    old.setup(aid, setup_body(split, email, [
        {"kind": "device", "device_id": old.device_id, "group_index": 0, "member_index": 0},
        {"kind": "device", "device_id": contact.device_id, "group_index": 0, "member_index": 1},
        {"kind": "operator", "group_index": 0, "member_index": 2}]))

    # negative first: a recovery the old phone cancels mid-delay releases nothing
    intruder = Recoverer(_client(stack))
    bad = intruder.start(email)
    intruder.api.otp(bad["case_id"], _otp(stack, email))
    old.cancel(bad["case_id"])
    _clock_passes_delay(stack, bad["case_id"])
    time.sleep(3)   # several reconcile rounds (RECONCILE_INTERVAL=1)
    got = intruder.api.case(bad["case_id"])
    assert got["state"] == "cancelled" and got["operator_share_sealed"] is None

    rec = Recoverer(new)
    case = rec.start(email)
    time.sleep(0.1)
    case = new.otp(case["case_id"], _otp(stack, email))
    assert case["state"] == "collecting"
    [request] = _wait(contact.requests, "the contact's request")
    approve(contact, request, split.share(0, 1), expected_phrase=case["verification_phrase"])
    assert new.case(case["case_id"])["state"] == "waiting"
    _clock_passes_delay(stack, case["case_id"])
    released = _wait(lambda: (c := new.case(case["case_id"]))["state"] == "released" and c,
                     "beat + worker to release the operator share")
    seed = rec.rebuild(released)
    assert seed.mnemonic == phone.recovery.mnemonic
    assert rec.complete(released, seed)["state"] == "completed"
    try:
        old.call("GET", "/v1/devices/me")
        raise AssertionError("the old phone still works")
    except ApiError as err:
        assert err.code == "device_revoked"

    dest = new.call("POST", "/v1/accounts", PhoneWallet().account_request("after-recovery"))
    sweep = new.build_sweep(aid, dest["account_id"], fee_rate=2)
    assert len(sweep["inputs"]) == 2
    done = new.call("POST", f"/v1/spends/{sweep['spend_id']}/signatures",
                    {"psbt": sign_sweep(seed, sweep, dest["receive_descriptor"])})
    assert done["state"] == "broadcast" and done["txid"] in node.call("getrawmempool")
    node.call("generatetoaddress", 1, faucet.call("getnewaddress"))
    _wait(lambda: new.call("GET", f"/v1/accounts/{dest['account_id']}/balance")["confirmed"] ==
          40_000_000 - sweep["fee_sat"], "the swept balance")
    assert new.call("GET", f"/v1/accounts/{aid}/balance")["confirmed"] == 0


def test_cli_backup_and_recovery_status(stack, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]

    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "client", "--server", stack.api_url, "--state",
                               str(tmp_path / "phone.json"), *args], cwd=root, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)
    cli("register")
    aid = cli("account", "create", "--name", "cli-backup")["account_id"]
    contact = _client(stack)
    setup = cli("recovery", "setup", aid, "--email", f"cli-{aid}@example.org", "--contact", contact.device_id)
    assert setup["status"] == "at_risk" and len(setup["contact_share"].split()) == 20
    assert cli("recovery", "status", aid)["recovery"]["setup_id"] == setup["setup_id"]
    # a second setup is a replacement request: the first stays in force; the CLI can cancel it
    again = cli("recovery", "setup", aid, "--email", f"cli-{aid}@example.org", "--contact", contact.device_id)
    assert again["setup_id"] == setup["setup_id"] and again["pending_change"]["state"] == "pending"
    assert "applies at" in again["note"]
    change_id = again["pending_change"]["change_id"]
    assert cli("recovery", "cancel-change", aid, change_id)["state"] == "cancelled"
    status = cli("recovery", "status", aid)["recovery"]
    assert status["setup_id"] == setup["setup_id"] and status["pending_change"] is None
    # asked again and the delay passes: the real worker replaces the setup, the CLI adopts its new share
    change_id = cli("recovery", "setup", aid, "--email", f"cli-{aid}@example.org", "--contact",
                    contact.device_id)["pending_change"]["change_id"]
    _clock_passes_change(stack, change_id)
    _wait(lambda: cli("recovery", "status", aid)["recovery"]["setup_id"] != setup["setup_id"], "the replacement")
    state = json.loads((tmp_path / "phone.json.recovery.json").read_text())
    now_held = {h["holder_id"] for h in cli("recovery", "status", aid)["recovery"]["holders"]
                if h["kind"] == "device" and h["device_id"] != contact.device_id}
    assert now_held <= set(state["held"]) and aid not in state.get("pending", {})
    (tmp_path / "blob").write_bytes(b"\x00encrypted backup\xff" * 100)
    assert cli("backup", "put", aid, str(tmp_path / "blob"), "--version", "1")["version"] == 1
    meta = cli("backup", "get", aid, "--out", str(tmp_path / "back"))
    assert meta["version"] == 1 and (tmp_path / "back").read_bytes() == (tmp_path / "blob").read_bytes()
