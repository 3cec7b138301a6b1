"""Messaging for the reference client: the API calls (`MessagingClient`, a CustosClient)
and the Signal protocol on top (`SignalMessenger`: python-axolotl with a SQLite store).

The server only ever sees public keys and ciphertext. A contact's identity key is pinned
from the invite's QR payload (its fingerprint) and checked before any session is opened.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from urllib.parse import quote

from client.sdk import CustosClient

LAST_RESORT_KEY_ID = 0xFFFFFF
MAX_ACK = 100           # guids per POST /v1/messages/ack
MAX_SEND = 50           # envelopes per POST /v1/messages
PREKEY_BATCH = 100
REPLENISH_BELOW = 20


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class MessagingClient(CustosClient):
    """CustosClient plus the /v1/keys, /v1/messages and /v1/contacts calls."""

    @classmethod
    def like(cls, other: CustosClient) -> "MessagingClient":
        """The same device (key, id, transport) with the messaging calls."""
        return cls(other.base_url, other.key, other.device_id, other.transport)

    # keys
    def upload_keys(self, body: dict) -> int:
        return self.call("PUT", "/v1/keys", body)["count"]

    def key_count(self) -> int:
        return self.call("GET", "/v1/keys/count")["count"]

    def fetch_bundle(self, device_id: str) -> dict:
        return self.call("GET", f"/v1/keys/{quote(device_id, safe='')}")

    # messages
    def send_envelopes(self, envelopes: list[dict]) -> list[dict]:
        return self.call("POST", "/v1/messages", {"messages": envelopes})["messages"]

    def fetch_messages(self, limit: int = 100) -> dict:
        return self.call("GET", f"/v1/messages?limit={int(limit)}")

    def ack(self, guid: str) -> None:
        self.call("DELETE", f"/v1/messages/{quote(guid, safe='')}")

    def ack_many(self, guids: list[str]) -> int:
        """Acknowledge many guids, MAX_ACK per call (one call per 100); returns how many
        messages the server deleted. Idempotent, like `ack`."""
        deleted = 0
        for i in range(0, len(guids), MAX_ACK):
            deleted += self.call("POST", "/v1/messages/ack", {"guids": guids[i:i + MAX_ACK]})["deleted"]
        return deleted

    # contacts
    def create_invite(self, display_name: str, receive_address: str | None = None) -> dict:
        body = {"display_name": display_name}
        if receive_address:
            body["receive_address"] = receive_address
        return self.call("POST", "/v1/contacts/invites", body)

    def accept_invite(self, code: str, display_name: str | None = None) -> dict:
        """Accept an invite; the code travels in the body, never in a URL (URLs get logged)."""
        body = {"code": code}
        if display_name:
            body["display_name"] = display_name
        return self.call("POST", "/v1/contacts/invites/accept", body)

    def contacts(self) -> list[dict]:
        return self.call("GET", "/v1/contacts")["contacts"]

    def delete_contact(self, contact_id: str) -> None:
        self.call("DELETE", f"/v1/contacts/{quote(contact_id, safe='')}")


@dataclass(frozen=True)
class Received:
    """A decrypted message (`plaintext`), one that could not be decrypted (`error`), or a
    server-authored system message (`system`: its body, e.g. {"v": 1, "type":
    "custody_challenge", "holder_id", "challenge"})."""
    guid: str
    sender: str
    plaintext: bytes | None
    error: str | None = None
    system: dict | None = None


class SignalMessenger:
    """One device's Signal-protocol messaging through a Custos server."""

    def __init__(self, api: MessagingClient, store_path):
        from client.signal_store import SqliteSignalStore
        self.api = api
        self.store = SqliteSignalStore(store_path)

    # -- keys ------------------------------------------------------------------------
    def identity_key(self) -> bytes:
        return self.store.getIdentityKeyPair().getPublicKey().serialize()

    def fingerprint(self) -> str:
        return hashlib.sha256(self.identity_key()).hexdigest()

    def _new_prekeys(self, count: int) -> list[dict]:
        from axolotl.util.keyhelper import KeyHelper
        first = self.store.next_id("prekey", count)
        out = []
        for record in KeyHelper.generatePreKeys(first % (LAST_RESORT_KEY_ID - 1) or 1, count):
            self.store.storePreKey(record.getId(), record)
            out.append({"key_id": record.getId(), "public_key": _b64(record.getKeyPair().getPublicKey().serialize())})
        return out

    def setup(self, prekeys: int = PREKEY_BATCH) -> int:
        """Upload identity key, a fresh signed prekey, `prekeys` one-time prekeys and the
        last-resort key. Returns the server's one-time prekey count."""
        from axolotl.ecc.curve import Curve
        from axolotl.state.prekeyrecord import PreKeyRecord
        from axolotl.util.keyhelper import KeyHelper
        pair = self.store.getIdentityKeyPair()
        signed = KeyHelper.generateSignedPreKey(pair, self.store.next_id("signed"))
        self.store.storeSignedPreKey(signed.getId(), signed)
        if self.store.containsPreKey(LAST_RESORT_KEY_ID):
            last = self.store.loadPreKey(LAST_RESORT_KEY_ID)
        else:
            last = PreKeyRecord(LAST_RESORT_KEY_ID, Curve.generateKeyPair())
            self.store.storePreKey(LAST_RESORT_KEY_ID, last)
        return self.api.upload_keys({
            "identity_key": _b64(pair.getPublicKey().serialize()),
            "registration_id": self.store.getLocalRegistrationId(),
            "signed_prekey": {"key_id": signed.getId(), "public_key": _b64(signed.getKeyPair().getPublicKey().serialize()),
                              "signature": _b64(signed.getSignature())},
            "one_time_prekeys": self._new_prekeys(prekeys),
            "last_resort_key": {"key_id": LAST_RESORT_KEY_ID,
                                "public_key": _b64(last.getKeyPair().getPublicKey().serialize())},
        })

    def replenish(self, below: int = REPLENISH_BELOW, batch: int = PREKEY_BATCH) -> int:
        """If fewer than `below` one-time prekeys are left on the server, upload a new batch
        (it replaces the server's pool; older private prekeys stay here for sessions in
        flight). Returns the count on the server afterwards."""
        left = self.api.key_count()
        if left >= below:
            return left
        return self.api.upload_keys({"identity_key": _b64(self.identity_key()),
                                     "registration_id": self.store.getLocalRegistrationId(),
                                     "one_time_prekeys": self._new_prekeys(batch)})

    # -- contacts --------------------------------------------------------------------
    def invite(self, display_name: str, receive_address: str | None = None) -> dict:
        return self.api.create_invite(display_name, receive_address)

    def accept(self, qr_payload: str, display_name: str | None = None) -> dict:
        """Accept an invite scanned from a QR payload and pin the inviter's identity key
        fingerprint (the session will refuse any other key)."""
        from messaging.qr import QrPayload
        qr = QrPayload.from_json(qr_payload)
        contact = self.api.accept_invite(qr.invite_code, display_name)
        self.store.pin(contact["device_id"], qr.identity_fingerprint)
        return contact

    # -- messages --------------------------------------------------------------------
    def _cipher(self, recipient: str):
        from axolotl.sessioncipher import SessionCipher
        s = self.store
        return SessionCipher(s, s, s, s, recipient, 1)

    def _open_session(self, recipient: str) -> None:
        from axolotl.ecc.curve import Curve
        from axolotl.identitykey import IdentityKey
        from axolotl.sessionbuilder import SessionBuilder
        from axolotl.state.prekeybundle import PreKeyBundle
        from axolotl.untrustedidentityexception import UntrustedIdentityException
        b = self.api.fetch_bundle(recipient)
        ik = base64.b64decode(b["identity_key"])
        pinned = self.store.pinned(recipient)
        if pinned is not None and hashlib.sha256(ik).hexdigest() != pinned:
            raise UntrustedIdentityException(recipient, IdentityKey(ik, 0))
        spk, otk = b["signed_prekey"], b["one_time_prekey"]
        bundle = PreKeyBundle(b["registration_id"], 1, otk["key_id"],
                              Curve.decodePoint(base64.b64decode(otk["public_key"]), 0),
                              spk["key_id"], Curve.decodePoint(base64.b64decode(spk["public_key"]), 0),
                              base64.b64decode(spk["signature"]), IdentityKey(ik, 0))
        s = self.store
        SessionBuilder(s, s, s, s, recipient, 1).processPreKeyBundle(bundle)

    def encrypt(self, recipient: str, plaintext: bytes) -> dict:
        """An envelope for `recipient` (opens a session from a fetched bundle if needed)."""
        if not self.store.containsSession(recipient, 1):
            self._open_session(recipient)
        msg = self._cipher(recipient).encrypt(plaintext)
        return {"to": recipient, "ciphertext": _b64(msg.serialize()), "type": msg.getType()}

    def send(self, recipient: str, plaintext: bytes) -> str:
        """Encrypt and queue one message; return its server guid."""
        return self.api.send_envelopes([self.encrypt(recipient, plaintext)])[0]["guid"]

    def send_many(self, items: list[tuple[str, bytes]]) -> list[str]:
        """Encrypt and queue several (recipient, plaintext) messages, MAX_SEND per call,
        in order; returns their server guids. Each call is all or nothing."""
        envelopes = [self.encrypt(recipient, plaintext) for recipient, plaintext in items]
        guids = []
        for i in range(0, len(envelopes), MAX_SEND):
            guids += [m["guid"] for m in self.api.send_envelopes(envelopes[i:i + MAX_SEND])]
        return guids

    def _decrypt(self, sender: str, kind: int, raw: bytes) -> bytes:
        from axolotl.protocol.prekeywhispermessage import PreKeyWhisperMessage
        from axolotl.protocol.whispermessage import WhisperMessage
        cipher = self._cipher(sender)
        if kind == 3:
            return cipher.decryptPkmsg(PreKeyWhisperMessage(serialized=raw))
        if kind == 2:
            return cipher.decryptMsg(WhisperMessage(serialized=raw))
        raise ValueError(f"unsupported message type {kind}")

    def receive(self, limit: int = 100) -> list[Received]:
        """Fetch the whole queue, decrypt, keep each plaintext in the local store, then
        acknowledge the page in one call (so nothing is lost if we crash before the ack:
        the same guids come back and are recognised). Undecryptable messages are
        acknowledged and reported; system messages (`system: true`, never encrypted) are
        returned with their body for the app to act on."""
        out: list[Received] = []
        while True:
            page = self.api.fetch_messages(limit)
            done = []
            for m in page["messages"]:
                guid, sender = m["guid"], m["from"]
                if m.get("system"):
                    out.append(Received(guid, sender, None, system=m["body"]))
                    done.append(guid)
                    continue
                if not self.store.has(guid):
                    try:
                        plain = self._decrypt(sender, m["type"], base64.b64decode(m["ciphertext"]))
                    except Exception as exc:  # a bad message must not block the queue
                        out.append(Received(guid, sender, None, type(exc).__name__))
                        done.append(guid)
                        continue
                    self.store.keep(guid, sender, m["server_timestamp"], plain)
                    out.append(Received(guid, sender, plain))
                done.append(guid)
            if done:
                self.api.ack_many(done)
            if not page["more"]:
                return out

    def close(self) -> None:
        self.store.close()




def ensure_keys(messenger: SignalMessenger) -> None:
    """Upload keys on first use; replenish one-time prekeys when they run low."""
    if not messenger.store.loadSignedPreKeys():
        messenger.setup()
    else:
        messenger.replenish()
