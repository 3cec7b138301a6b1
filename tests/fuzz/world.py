"""A populated Custos for the fuzz tests: an owner device with a funded account, a spend,
a pending policy change, a recovery setup with a contact, an open recovery case, a backup,
keys, a contact, an invite and a message; a staff member with a token. `ids` maps every
path parameter name in the OpenAPI document to real values the generator may use."""
from __future__ import annotations

import base64
from decimal import Decimal

from client.messaging import MessagingClient
from client.phone import PhoneWallet
from client.recovery import RecoveryClient, Recoverer, setup_body, split_recovery
from client.sdk import DeviceKey
from store.base import utcnow
from store.session import session_scope
from tests.conftest import flask_transport
from tests.messaging_kit import key_upload

STAFF_KEY = "fuzz-staff-key-0123456789abcdefghij"
STAFF_ID = "fuzzer"                # a development STAFF_API_KEYS key: every role, no TOTP needed
EMAIL = "fuzz-owner@example.org"


def _seed_prices(settings) -> None:
    """A validated price for every configured currency (the refresh job never runs here;
    without one /v1/prices rightly answers 503 price_unavailable)."""
    import datetime as dt
    from prices.model import CurrentPrice
    now = utcnow()
    with session_scope(settings.database_url) as s:
        for currency in settings.price_currencies:
            s.merge(CurrentPrice(currency=currency, price="60000.00", as_of=now, valid_until=now + dt.timedelta(days=1),
                                 sources=[{"source": "fuzz", "price": "60000.00", "as_of": now.isoformat()}],
                                 discarded=[], checked_at=now, problem=None))


def _device(app) -> RecoveryClient:
    c = RecoveryClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app))
    c.register()
    return c


def build(app, settings, chain_node, mine) -> dict:
    owner, contact, requester = _device(app), _device(app), _device(app)
    m_owner, m_contact = MessagingClient.like(owner), MessagingClient.like(contact)
    m_owner.upload_keys(key_upload(5)[0])
    m_contact.upload_keys(key_upload(5)[0])
    invite = m_owner.create_invite("Owner")
    contact_row = m_contact.accept_invite(invite["invite_code"], "Contact")
    spare_invite = m_owner.create_invite("Spare")
    sent = m_contact.send_envelopes([{"to": owner.device_id, "ciphertext": base64.b64encode(b"hi").decode()}])

    phone = PhoneWallet()
    account = owner.call("POST", "/v1/accounts", phone.account_request("fuzz"))
    aid = account["account_id"]
    address = owner.call("POST", f"/v1/accounts/{aid}/addresses")["address"]
    chain_node.faucet.sendtoaddress(address, Decimal("0.5"))
    mine(1)
    spend = owner.call("POST", f"/v1/accounts/{aid}/spends",
                       {"outputs": [{"address": chain_node.faucet.getnewaddress(), "amount_sat": 10_000}],
                        "fee_rate_sat_vb": 2})
    owner.call("PUT", f"/v1/accounts/{aid}/policy", {"max_per_tx_sat": 1000})
    loosened = owner.call("PUT", f"/v1/accounts/{aid}/policy", {"max_per_tx_sat": 5000})

    split = split_recovery(phone)
    body = setup_body(split, EMAIL, [
        {"kind": "device", "device_id": owner.device_id, "label": "phone", "group_index": 0, "member_index": 0},
        {"kind": "device", "device_id": contact.device_id, "label": "Contact", "group_index": 0, "member_index": 1},
        {"kind": "operator", "group_index": 0, "member_index": 2}])
    status = owner.setup(aid, body)
    case = Recoverer(requester).start(EMAIL)
    owner.put_backup(aid, 1, b"backup blob")

    from admin import services as staff
    with session_scope(settings.database_url) as s:
        staff.create(s, "zed", "a long enough password", ["support"], by="cli:fuzz", now=utcnow())
        token_row, _token = staff.create_token(s, "zed", "fuzz", ["support"], by="cli:fuzz", now=utcnow())
        token_id = token_row.id

    _seed_prices(settings)
    ids = {
        "account_id": [aid], "spend_id": [spend["spend_id"]], "device_id": [owner.device_id, contact.device_id],
        "guid": [g["guid"] for g in sent], "contact_id": [contact_row["contact_id"]],
        "code": [spare_invite["invite_code"]], "case_id": [case["case_id"]],
        "holder_id": [h["holder_id"] for h in status["holders"]], "version": [1],
        "change_id": [(loosened.get("pending_change") or {}).get("change_id") or "pc_none"],
        "staff_id": ["zed"], "token_id": [token_id],
    }
    return {"owner": owner, "contact": contact, "requester": requester, "ids": ids, "account_id": aid}
