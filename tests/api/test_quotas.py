"""Quotas (issue #14, M5): accounts per device, one pending policy change per account,
open invites and contacts per device, new backup versions per hour — each a 409/429
with its own code, nothing stored beyond the limit."""
from __future__ import annotations

import pytest

from client.phone import PhoneWallet
from tests.api.recovery_kit import account, device
from tests.messaging_kit import key_upload


@pytest.fixture
def qapp(settings_factory, app_factory, master_key):
    """bitcoind is down in these tests: account imports wait for the job, as designed."""
    return app_factory(settings_factory(MASTER_KEY=master_key, MAX_ACCOUNTS_PER_DEVICE=3))


def _error(result):
    status, headers, data = result
    return status, data["error"]["code"], data["error"]["details"], headers


def test_accounts_per_device(qapp):
    owner, other = device(qapp), device(qapp)
    phone = PhoneWallet()
    for i in range(3):
        account(owner, phone, name=f"a{i}")
    status, code, details, _ = _error(owner.request("POST", "/v1/accounts", phone.account_request("a4")))
    assert (status, code, details) == (409, "account_quota_exceeded", {"limit": 3})
    assert len(owner.call("GET", "/v1/accounts")) == 3
    account(other, PhoneWallet())                                     # per device


def test_one_pending_policy_change_a_new_loosening_supersedes_it(qapp):
    owner = device(qapp)
    aid = account(owner, PhoneWallet())["account_id"]
    owner.call("PUT", f"/v1/accounts/{aid}/policy", {"max_per_tx_sat": 1_000})
    for i in range(40):                                               # 40 loosening PUTs
        out = owner.call("PUT", f"/v1/accounts/{aid}/policy", {"max_per_tx_sat": 2_000 + i})
    assert len(out["pending_changes"]) == 1
    changes = owner.call("GET", f"/v1/accounts/{aid}/policy/changes")
    assert [c["state"] for c in changes].count("pending") == 1
    assert [c["state"] for c in changes].count("superseded") == 39
    assert changes[0]["rules"]["max_per_tx_sat"] == 2_039


def test_open_invites_per_device(qapp):
    from messaging.limits import MAX_PENDING_INVITES
    owner = device(qapp)
    owner.call("PUT", "/v1/keys", key_upload(2)[0])
    for _ in range(MAX_PENDING_INVITES):
        owner.call("POST", "/v1/contacts/invites", {"display_name": "Me"})
    status, code, details, _ = _error(owner.request("POST", "/v1/contacts/invites", {"display_name": "Me"}))
    assert (status, code, details) == (409, "invite_quota_exceeded", {"limit": MAX_PENDING_INVITES})


def test_contacts_per_device(qapp, monkeypatch):
    import messaging.contacts
    monkeypatch.setattr(messaging.contacts, "MAX_CONTACTS", 2)       # the limit, lowered for the test
    hub = device(qapp)
    hub.call("PUT", "/v1/keys", key_upload(2)[0])
    results = []
    for _ in range(3):
        code = hub.call("POST", "/v1/contacts/invites", {"display_name": "Hub"})["invite_code"]
        friend = device(qapp)
        results.append(friend.request("POST", "/v1/contacts/invites/accept", {"code": code, "display_name": "F"}))
    assert [r[0] for r in results[:2]] == [201, 201]
    status, code, details, _ = _error(results[2])
    assert (status, code, details) == (409, "contact_quota_exceeded", {"limit": 2})
    assert len(hub.call("GET", "/v1/contacts")["contacts"]) == 2


def test_backup_versions_per_hour(qapp):
    from client.recovery import RecoveryClient
    from recovery.limits import MAX_BACKUPS_PER_HOUR
    owner = RecoveryClient.like(device(qapp))
    aid = account(owner, PhoneWallet())["account_id"]
    for v in range(1, MAX_BACKUPS_PER_HOUR + 1):
        owner.put_backup(aid, v, b"blob %d" % v)
    import hashlib
    blob = b"one too many"
    status, code, details, headers = _error(owner.request("PUT", f"/v1/accounts/{aid}/backups", {
        "version": 99, "sha256": hashlib.sha256(blob).hexdigest(), "blob": "b25lIHRvbyBtYW55"}))
    assert (status, code, details["limit"]) == (429, "backup_quota_exceeded", MAX_BACKUPS_PER_HOUR)
    assert 3500 < int(headers["Retry-After"]) <= 3601
    assert owner.get_backup(aid)[0]["version"] == MAX_BACKUPS_PER_HOUR


def test_restores_with_a_past_birthday_per_device_per_day(settings_factory, app_factory, master_key):
    """A birthday makes the chain side rescan from then (2009 on mainnet: the whole chain)."""
    import time
    from cosigner.quotas import MAX_RESTORES_PER_DAY
    app = app_factory(settings_factory(MASTER_KEY=master_key))
    owner = device(app)
    old = 1_300_000_000                                                # 2011
    for i in range(MAX_RESTORES_PER_DAY):
        owner.call("POST", "/v1/accounts", {**PhoneWallet().account_request(f"r{i}"), "birthday": old})
    status, code, details, headers = _error(owner.request(
        "POST", "/v1/accounts", {**PhoneWallet().account_request("one more"), "birthday": old}))
    assert (status, code, details["limit"]) == (429, "restore_quota_exceeded", MAX_RESTORES_PER_DAY)
    assert 86_000 < int(headers["Retry-After"]) <= 86_401
    fresh = {**PhoneWallet().account_request("new"), "birthday": int(time.time())}
    assert owner.request("POST", "/v1/accounts", fresh)[0] == 201       # a new wallet rescans nothing
    assert owner.request("POST", "/v1/accounts", PhoneWallet().account_request("plain"))[0] == 201
