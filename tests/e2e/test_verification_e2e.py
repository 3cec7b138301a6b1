"""Out-of-band verification over real HTTP with the reference client CLI and the real
Celery worker (issue #17): an authenticator is enrolled (`verify totp enroll|confirm`),
a `verify` rule holds a spend in awaiting_verification, `spend verify CODE` releases it
through the signing gate (broadcast once); a second held spend whose verification
expires is cancelled by the worker's `verification.expiry` job and its coins freed. The
clock is moved in the database (the job's due time), not by waiting 15 minutes."""
from __future__ import annotations

import json
from decimal import Decimal

import pyotp
from sqlalchemy import create_engine, text

from tests.e2e.test_accounts_e2e import cli, wait_until
from tests.totp_steps import pick_step


def test_totp_verification_and_expiry_through_the_worker(stack, stack_rpc, tmp_path):
    node, faucet = stack_rpc
    state = tmp_path / "phone.json"
    cli(stack, state, "register")
    aid = cli(stack, state, "account", "create", "--name", "verified")["account_id"]
    address = cli(stack, state, "account", "receive", aid)["address"]
    faucet.call("sendtoaddress", address, Decimal("0.2"))
    node.call("generatetoaddress", 1, faucet.call("getnewaddress"))
    wait_until(lambda: cli(stack, state, "account", "balance", aid)["confirmed"], what="funds")

    enrolled = cli(stack, state, "verify", "totp", "enroll", aid)
    totp = pyotp.parse_uri(enrolled["otpauth_uri"])
    step = pick_step(totp, 0)
    assert cli(stack, state, "verify", "totp", "confirm", aid, totp.generate_otp(step))["state"] == "active"
    cli(stack, state, "policy", "set", aid, json.dumps({"verify": {"above_sat": 100000, "channel": "totp"}}))

    held = cli(stack, state, "account", "send", aid, faucet.call("getnewaddress"), "500000", "--fee-rate", "2")
    assert held["state"] == "awaiting_verification" and held["txid"] is None
    sent = cli(stack, state, "spend", "verify", held["spend_id"], totp.generate_otp(pick_step(totp, step)))
    assert sent["state"] == "broadcast" and node.call("getrawmempool").count(sent["txid"]) == 1
    node.call("generatetoaddress", 1, faucet.call("getnewaddress"))
    wait_until(lambda: cli(stack, state, "account", "balance", aid)["confirmed"], what="change confirmed")

    other = cli(stack, state, "account", "send", aid, faucet.call("getnewaddress"), "400000", "--fee-rate", "2")
    assert other["state"] == "awaiting_verification"
    engine = create_engine(stack.env["DATABASE_URL"])
    try:
        with engine.begin() as conn:   # its verification's deadline passes
            ids = [r[0] for r in conn.execute(text("SELECT id FROM verification_requests WHERE subject_id = :s"),
                                              {"s": other["spend_id"]})]
            assert len(ids) == 1
            conn.execute(text("UPDATE verification_requests SET expires_at = :t WHERE id = :id"),
                         {"t": "2000-01-01 00:00:00.000000", "id": ids[0]})
            conn.execute(text("UPDATE scheduled_jobs SET due_at = :t WHERE subject = :id"),
                         {"t": "2000-01-01 00:00:00.000000", "id": ids[0]})
    finally:
        engine.dispose()
    gone = wait_until(lambda: (s := cli(stack, state, "spend", "show", other["spend_id"])["spend"])["state"]
                      == "cancelled" and s, what="the worker to expire the verification")
    assert gone["txid"] is None
    again = cli(stack, state, "account", "send", aid, faucet.call("getnewaddress"), "50000", "--fee-rate", "2")
    assert again["state"] == "broadcast"                       # below the threshold, and the coins were freed
