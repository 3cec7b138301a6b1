"""Shared steps for the inheritance tests: owner, beneficiary and another holder as
reference clients, contacts made by invite, a 2-of-4 recovery setup in which the
beneficiary holds a `beneficiary` share, and moving a claim's or a plan change's clock
(calling the service with an explicit `now`, as the worker would)."""
from __future__ import annotations

import datetime as dt

from client.inheritance import InheritanceClient
from client.messaging import MessagingClient
from client.phone import PhoneWallet
from client.recovery import setup_body, split_recovery
from client.sdk import DeviceKey
from tests.conftest import flask_transport


def device(app) -> InheritanceClient:
    c = InheritanceClient("http://localhost", DeviceKey.generate(), transport=flask_transport(app))
    c.register()
    return c


def messenger(client):
    """A Signal messenger for `client` with its prekeys uploaded (store in a temp dir)."""
    import tempfile
    from pathlib import Path
    from client.messaging import SignalMessenger, ensure_keys
    m = SignalMessenger(MessagingClient.like(client), str(Path(tempfile.mkdtemp()) / "signal.db"))
    ensure_keys(m)
    return m


def befriend(a, b, ma=None, mb=None):
    """Make `a` and `b` messaging contacts (a invites, b scans the QR). Returns their messengers."""
    import json
    ma, mb = ma or messenger(a), mb or messenger(b)
    invite = ma.invite("A")
    qr = invite["qr_payload"]
    mb.accept(qr if isinstance(qr, str) else json.dumps(qr))
    return ma, mb


def setup_with_beneficiary(owner, beneficiary_id: str, other_id: str, account_id: str, phone: PhoneWallet,
                           email: str, groups=((2, 4),)):
    """owner's phone member 0, the beneficiary member 1 (role beneficiary), another holder
    member 2, the operator member 3."""
    split = split_recovery(phone, groups=list(groups))
    body = setup_body(split, email, [
        {"kind": "device", "device_id": owner.device_id, "label": "my phone", "group_index": 0, "member_index": 0},
        {"kind": "device", "device_id": beneficiary_id, "label": "Ben", "role": "beneficiary", "group_index": 0,
         "member_index": 1},
        {"kind": "device", "device_id": other_id, "label": "Olga", "group_index": 0, "member_index": 2},
        {"kind": "operator", "group_index": 0, "member_index": 3}])
    owner.setup(account_id, body)
    return split


def apply_changes(settings, account_id: str, now: dt.datetime) -> int:
    """Apply the account's pending plan changes as the `inheritance.plan_apply` job would at `now`."""
    from inheritance.context import inheritance_context
    from inheritance.plans import apply_change, pending
    from store.session import session_scope
    with session_scope(settings.database_url) as s:
        ctx = inheritance_context(settings)
        return sum(apply_change(s, ctx, c.id, now) for c in pending(s, account_id))


def advance(settings, claim_id: str, now: dt.datetime) -> str:
    from inheritance.context import inheritance_context
    from inheritance.timeline import advance as run
    from store.session import session_scope
    with session_scope(settings.database_url) as s:
        return run(s, inheritance_context(settings), claim_id, now)


def system_bodies(client, kind: str) -> list[dict]:
    """The system messages of `kind` in the device's queue (acknowledged)."""
    got = MessagingClient.like(client).fetch_messages()
    out = [m["body"] for m in got["messages"] if m.get("system") and m["body"].get("type") == kind]
    return out
