"""Shared steps for the recovery tests: a settings/app pair with staff keys, three
reference clients, the 2-of-3 setup, reading the OTP from the mail outbox, and moving a
case's clock (calling the service with an explicit `now`)."""
from __future__ import annotations

import datetime as dt
import re

from client.phone import PhoneWallet
from client.recovery import RecoveryClient, split_recovery, setup_body
from client.sdk import CustosClient, DeviceKey
from tests.conftest import flask_transport

STAFF = {"alice": "alice-key-0123456789abcdefghij", "bob": "bob-key-0123456789abcdefghijkl"}
STAFF_ENV = ",".join(f"{k}:{v}" for k, v in STAFF.items())


def device(app) -> RecoveryClient:
    c = RecoveryClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app))
    c.register()
    return c


def staff_call(app, method, path, who="alice"):
    resp = app.test_client().open(path, method=method, headers={"Authorization": f"Bearer {STAFF[who]}"},
                                   environ_base={"REMOTE_ADDR": "10.9.8.7"})
    return resp.status_code, resp.get_json()


def account(owner: CustosClient, phone: PhoneWallet, name="main") -> dict:
    acct = owner.call("POST", "/v1/accounts", phone.account_request(name))
    phone.verify_account(acct)
    return acct


def setup_2of3(owner: RecoveryClient, contact_id: str, account_id: str, phone: PhoneWallet, email: str):
    """owner's own phone holds member 0, the contact member 1, the operator member 2."""
    split = split_recovery(phone)
    body = setup_body(split, email, [
        {"kind": "device", "device_id": owner.device_id, "label": "my phone", "group_index": 0, "member_index": 0},
        {"kind": "device", "device_id": contact_id, "label": "Carol", "group_index": 0, "member_index": 1},
        {"kind": "operator", "group_index": 0, "member_index": 2}])
    return split, body, owner.setup(account_id, body)


def outbox_codes(settings, email: str) -> list[str]:
    """Every OTP mailed to `email`, oldest first (decrypted from the sealed outbox)."""
    from cosigner.vault import keyring_from_settings
    from recovery.mailer import read_outbox
    from recovery.secrets_box import email_hash, email_key
    from store.session import session_scope
    with session_scope(settings.database_url) as s:
        mails = read_outbox(s, keyring_from_settings(settings), email_hash(email_key(settings.secret_key), email),
                            kind="recovery_otp")
    return [re.search(r"Code: (\d{6})", m.body).group(1) for m in mails]


def advance(settings, case_id: str, now: dt.datetime) -> str:
    """Run the case's timed steps as the worker would, at an explicit `now`."""
    from recovery.cases import advance as run
    from recovery.context import recovery_context
    from store.session import session_scope
    with session_scope(settings.database_url) as s:
        return run(s, recovery_context(settings), case_id, now)


def apply_setup_changes(settings, account_id: str, now: dt.datetime) -> int:
    """Run the account's pending `recovery.setup_apply` job body as the worker would at
    `now`; returns how many changes applied."""
    from recovery.context import recovery_context
    from recovery.setup_changes import apply_change, pending
    from store.session import session_scope
    with session_scope(settings.database_url) as s:
        change = pending(s, account_id)
        return int(change is not None and apply_change(s, recovery_context(settings), change.id, now))


def replaced(owner, settings, account_id: str, body: dict) -> dict:
    """Ask to replace the setup and let its delay pass: the setup in force after."""
    change = owner.setup(account_id, body)["pending_change"]
    assert change is not None and change["state"] == "pending"
    assert apply_setup_changes(settings, account_id, dt.datetime.fromisoformat(change["effective_at"])) == 1
    return owner.status(account_id)
