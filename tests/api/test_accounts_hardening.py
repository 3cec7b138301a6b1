"""Account defects from the security review (issue #14): a private key inside a watch-only
descriptor (L2) and an idempotent create while bitcoind is down (L3)."""
from __future__ import annotations

import os

import pytest
from embit.ec import PrivateKey
from embit.networks import NETWORKS

from tests.api.recovery_kit import device


@pytest.fixture
def down_app(settings_factory, app_factory, master_key):
    """bitcoind is unreachable (127.0.0.1:9)."""
    return app_factory(settings_factory(MASTER_KEY=master_key))


def _wif() -> str:
    return PrivateKey(os.urandom(32)).wif(NETWORKS["regtest"])


@pytest.mark.parametrize("field,template", [
    ("descriptor", "wpkh({})"), ("descriptor", "sh(wpkh({}))"), ("descriptor", "wsh(multi(1,{}))"),
    ("change_descriptor", "wpkh({})"),
])
def test_a_wif_key_in_a_watch_only_descriptor_is_refused(down_app, field, template):
    owner = device(down_app)
    wif = _wif()
    public = "wpkh(02" + "11" * 32 + ")"
    body = {"name": "watch", "network": "regtest", "template": "watch_only", "descriptor": public}
    body[field] = template.format(wif)
    status, _h, data = owner.request("POST", "/v1/accounts", body)
    assert (status, data["error"]["code"]) == (400, "private_key_sent")
    assert wif not in str(data)
    assert owner.call("GET", "/v1/accounts") == []


def test_idempotent_create_while_bitcoind_is_down_stores_the_account(down_app):
    """Before: the deferred commit rolled the account back with the failed import → 500."""
    from client.phone import PhoneWallet
    owner = device(down_app)
    body = PhoneWallet().account_request("later")
    first = owner.request("POST", "/v1/accounts", body, headers={"Idempotency-Key": "create-1"})
    assert first[0] == 201, first[2]
    assert first[2]["imported"] is False                     # the account.import job converges later
    again = owner.request("POST", "/v1/accounts", body, headers={"Idempotency-Key": "create-1"})
    assert again[0] == 201 and again[1].get("Idempotent-Replayed") == "true"
    assert again[2]["account_id"] == first[2]["account_id"]
    assert [a["account_id"] for a in owner.call("GET", "/v1/accounts")] == [first[2]["account_id"]]
