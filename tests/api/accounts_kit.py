"""Shared steps for the account API tests."""
from __future__ import annotations

from decimal import Decimal



def create(device, phone, name="acct", **kw):
    """Create an account and verify its descriptors on the phone side."""
    account = device.call("POST", "/v1/accounts", phone.account_request(name, **kw))
    phone.verify_account(account)
    return account


def fund(chain_node, mine, device, account, btc="1.0", blocks=1):
    """Pay `btc` from the faucet to the account's next receive address and mine.
    Returns (issued address dict, txid)."""
    addr = device.call("POST", f"/v1/accounts/{account['account_id']}/addresses")
    txid = chain_node.faucet.sendtoaddress(addr["address"], Decimal(btc))
    mine(blocks)
    return addr, txid
