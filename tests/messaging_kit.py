"""Helpers for the messaging tests: real Curve25519 key material (python-axolotl), a
device with uploaded keys, and two devices made contacts through the API."""
from __future__ import annotations

import base64

from client.messaging import LAST_RESORT_KEY_ID, MessagingClient


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def key_upload(prekeys: int = 10, first_id: int = 1, signed_id: int = 1, identity=None):
    """(body for PUT /v1/keys, identity key pair) with freshly generated keys."""
    from axolotl.ecc.curve import Curve
    from axolotl.util.keyhelper import KeyHelper
    identity = identity or KeyHelper.generateIdentityKeyPair()
    signed = KeyHelper.generateSignedPreKey(identity, signed_id)
    body = {
        "identity_key": b64(identity.getPublicKey().serialize()),
        "registration_id": 42,
        "signed_prekey": {"key_id": signed_id, "public_key": b64(signed.getKeyPair().getPublicKey().serialize()),
                          "signature": b64(signed.getSignature())},
        "one_time_prekeys": [{"key_id": r.getId(), "public_key": b64(r.getKeyPair().getPublicKey().serialize())}
                             for r in KeyHelper.generatePreKeys(first_id, prekeys)],
        "last_resort_key": {"key_id": LAST_RESORT_KEY_ID,
                            "public_key": b64(Curve.generateKeyPair().getPublicKey().serialize())},
    }
    return body, identity


def messaging_client(transport=None) -> MessagingClient:
    from client.sdk import DeviceKey
    return MessagingClient("http://localhost", DeviceKey.generate(), transport=transport)


def registered(transport, prekeys: int = 10) -> MessagingClient:
    c = messaging_client(transport=transport)
    c.register()
    c.upload_keys(key_upload(prekeys)[0])
    return c


def befriend(a: MessagingClient, b: MessagingClient, name_a: str = "Alice", name_b: str = "Bob") -> dict:
    invite = a.create_invite(name_a)
    return b.accept_invite(invite["invite_code"], name_b)

