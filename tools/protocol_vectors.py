"""Test vectors for docs/PROTOCOL.md, computed from fixed inputs by the code that
produces the formats (the reference client) and checked by the code that verifies them
(the server): a vector is only written when both agree.

`vectors()` returns {name: text}; docs/PROTOCOL.md carries each between
`<!-- vector:NAME -->` and `<!-- /vector -->` lines, and tests/unit/test_protocol_doc.py
fails when they drift. Regenerate the document's blocks with

    .venv/bin/python -m tools.protocol_vectors --write

Formats with randomness (a NaCl sealed box, a P-256 signature) are vectors the suite
*verifies* (the documented box must open to the documented plaintext) rather than
regenerates; `--write` makes a new box, `check()` keeps the documented one if it opens.
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "PROTOCOL.md"
BLOCK = re.compile(r"<!-- vector:(?P<name>[a-z0-9_]+) -->\n```\n(?P<body>.*?)```\n<!-- /vector -->", re.S)

CREATED = 1767225600                                   # 2026-01-01T00:00:00Z
DEVICE_SEED = bytes(range(1, 33))
P256_PRIVATE = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296 - 12345
SHARE = "academic acid academic acne academic academic academic academic academic academic " \
        "academic academic academic academic academic academic academic academic academic academic"
HOLDER_ID, CASE_ID = "rhold_00112233445566778899aabb", "rcase_00112233445566778899aabb"
RECOVERY_MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _lines(**kv) -> str:
    return "".join(f"{k}: {v}\n" for k, v in kv.items())


def request_signing() -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from app.auth import httpsig
    from client.sdk import CustosClient, DeviceKey
    from devices import keys
    key = DeviceKey("ed25519", Ed25519PrivateKey.from_private_bytes(DEVICE_SEED))
    client = CustosClient("https://custos.example", key, device_id="dev_00112233445566778899aabbccddeeff")
    body = json.dumps({"push_token": "abc"}).encode()
    url = "https://custos.example/v1/devices/me/push-token?lang=en"
    headers = client.sign("PUT", url, {"Content-Type": "application/json"}, body, keyid=client.device_id,
                          created=dt.datetime.fromtimestamp(CREATED, dt.timezone.utc),
                          nonce="protocol-vector-nonce-0001")
    view = httpsig.RequestView("PUT", "https", "custos.example", "/v1/devices/me/push-token", "lang=en",
                               httpsig.make_headers(headers.items()), body)
    sig = httpsig.parse_signature(view)
    base = httpsig.signature_base(view, sig)
    assert keys.verify_signature("ed25519", key.public_bytes(), sig.signature, base), "server refuses the vector"
    return (_lines(private_key_seed_hex=DEVICE_SEED.hex(), public_key_b64=key.public_b64(),
                   method="PUT", target="/v1/devices/me/push-token?lang=en", body=body.decode())
            + "\n" + "\n".join(f"{k}: {v}" for k, v in headers.items() if k != "Content-Type")
            + "\n\nsignature base:\n" + base.decode() + "\n")


def key_encodings() -> str:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from client.sdk import DeviceKey
    from devices import keys
    ed = DeviceKey("ed25519", Ed25519PrivateKey.from_private_bytes(DEVICE_SEED))
    p256 = DeviceKey("ecdsa-p256", ec.derive_private_key(P256_PRIVATE, ec.SECP256R1()))
    for k in (ed, p256):
        assert keys.fingerprint(keys.parse_public_key(k.kind, k.public_b64())) == k.fingerprint()
    return _lines(ed25519_public_b64=ed.public_b64(), ed25519_keyid=ed.fingerprint(),
                  p256_private_hex=f"{P256_PRIVATE:064x}", p256_public_b64=p256.public_b64(),
                  p256_keyid=p256.fingerprint())


def content_digest() -> str:
    from app.auth.httpsig import content_digest as digest
    body = b'{"push_token": "abc"}'
    return _lines(body=body.decode(), content_digest=digest(body))


def qr_payload() -> str:
    from messaging.prekeys import fingerprint
    from messaging.qr import QrPayload
    identity = b"\x05" + bytes([2]) * 32
    qr = QrPayload("A" * 43, fingerprint(identity), "Alice", "bcrt1qexampleaddress0000000000000000")
    assert QrPayload.from_json(qr.to_json()) == qr
    return _lines(identity_key_hex=identity.hex(), fp=fingerprint(identity), qr_payload=qr.to_json(),
                  signed_prekey_signature_covers_hex=(b"\x05" + bytes([7]) * 32).hex())


def custody_proof() -> str:
    from client.recovery import custody_public, custody_signature
    from recovery import shares
    challenge = bytes([3]) * 32
    public = custody_public(SHARE)
    assert base64.b64decode(public) == shares.custody_public_key(SHARE)
    signature = custody_signature(SHARE, HOLDER_ID, _b64(challenge))
    assert shares.verify_custody(base64.b64decode(public), HOLDER_ID, challenge, base64.b64decode(signature))
    return _lines(share=SHARE, custody_public_key_b64=public, holder_id=HOLDER_ID, challenge_b64=_b64(challenge),
                  message_hex=shares.custody_message(HOLDER_ID, challenge).hex(), signature_b64=signature)


def verification_phrase() -> str:
    from client.recovery import verification_phrase as client_phrase
    from recovery.secrets_box import verification_phrase as server_phrase
    sealing = bytes([4]) * 32
    phrase = server_phrase(CASE_ID, sealing)
    assert client_phrase(CASE_ID, _b64(sealing)) == phrase
    return _lines(case_id=CASE_ID, sealing_key_b64=_b64(sealing), phrase=phrase)


def completion_signature() -> str:
    from client.phone import Seed
    from client.recovery import Recoverer
    from recovery.secrets_box import completion_message, verify_completion
    seed = Seed(RECOVERY_MNEMONIC, "regtest")
    challenge = bytes([5]) * 32
    signature = Recoverer.completion_signature(seed, {"case_id": CASE_ID, "challenge": _b64(challenge)})
    xpub = seed.account_key()["xpub"]
    verify_completion(xpub, CASE_ID, challenge, bytes.fromhex(signature))
    return _lines(recovery_mnemonic=RECOVERY_MNEMONIC, network="regtest", recovery_xpub=xpub,
                  signing_key_path=f"m/{seed.path}/9/0", case_id=CASE_ID, challenge_b64=_b64(challenge),
                  digest_hex=completion_message(CASE_ID, challenge).hex(), signature_der_hex=signature)


def backup() -> str:
    blob = b"client-encrypted backup v1"
    return _lines(blob_b64=_b64(blob), sha256=hashlib.sha256(blob).hexdigest(), size=len(blob))


def sealed_share(existing: str | None = None) -> str:
    """A sealed box to a fixed X25519 key: kept from the document when it opens."""
    from nacl.public import PrivateKey, SealedBox
    private = PrivateKey(bytes([6]) * 32)
    plaintext = b"the contact's SLIP-39 share (mnemonic text, UTF-8)"
    if existing:
        from nacl.exceptions import CryptoError
        found = re.search(r"sealed_b64: (\S+)", existing)
        try:
            opens = found is not None and SealedBox(private).decrypt(base64.b64decode(found.group(1))) == plaintext
        except (CryptoError, ValueError):
            opens = False
        if opens:
            return existing
    box = _b64(SealedBox(private.public_key).encrypt(plaintext))
    return _lines(sealing_private_key_hex=bytes(private).hex(), sealing_key_b64=_b64(bytes(private.public_key)),
                  plaintext=plaintext.decode(), sealed_b64=box)


PRODUCERS = {"request_signing": request_signing, "key_encodings": key_encodings, "content_digest": content_digest,
             "qr_payload": qr_payload, "custody_proof": custody_proof, "verification_phrase": verification_phrase,
             "completion_signature": completion_signature, "backup": backup}


def documented(text: str | None = None) -> dict[str, str]:
    text = DOC.read_text() if text is None else text
    return {m.group("name"): m.group("body") for m in BLOCK.finditer(text)}


def vectors(doc: dict[str, str] | None = None) -> dict[str, str]:
    doc = documented() if doc is None and DOC.exists() else (doc or {})
    out = {name: fn() for name, fn in PRODUCERS.items()}
    out["sealed_share"] = sealed_share(doc.get("sealed_share"))
    return out


def write() -> None:
    text = DOC.read_text()
    fresh = vectors(documented(text))

    def fill(m):
        return f"<!-- vector:{m.group('name')} -->\n```\n{fresh[m.group('name')]}```\n<!-- /vector -->"
    DOC.write_text(BLOCK.sub(fill, text))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true", help="rewrite the vector blocks of docs/PROTOCOL.md")
    if ap.parse_args().write:
        write()
    else:
        for name, body in vectors().items():
            print(f"== {name}\n{body}")
