"""Social recovery for the reference client: SLIP-39 split/combine of the recovery seed
(shamir-mnemonic), custody keys and answers, share delivery to contacts as Signal
messages, the contact's approval (sealed box to the requester), the new phone's
recovery flow (sealing key, open shares, rebuild the seed, prove the recovery key) and
the sweep; backups.

Like client/phone.py this does not import the server's code: the custody-key
derivation and the completion message are re-implemented from their documentation.
"""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field

from embit import bip39
from embit.psbt import PSBT

from client.phone import PhoneWallet, Seed
from client.sdk import CustosClient

SHARE_MESSAGE = "custos.recovery_share"
COMPLETE_PATH = "9/0"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _norm(mnemonic: str) -> str:
    return " ".join(mnemonic.strip().lower().split())


class ShareError(Exception):
    """Shares could not be parsed or combined (never quotes a share)."""


# -- SLIP-39 -------------------------------------------------------------------------------
@dataclass
class Split:
    scheme: dict
    groups: list[list[str]]               # mnemonics per group

    def share(self, group: int, member: int) -> str:
        return self.groups[group][member]


def split_recovery(phone: PhoneWallet, groups: list[tuple[int, int]] = ((2, 3),), group_threshold: int = 1,
                   passphrase: bytes = b"") -> Split:
    """Split the recovery seed's BIP39 entropy with SLIP-39. Default 2-of-3."""
    from shamir_mnemonic import generate_mnemonics
    from shamir_mnemonic.share import Share
    entropy = bip39.mnemonic_to_bytes(phone.recovery.mnemonic)
    mnemonics = generate_mnemonics(group_threshold, list(groups), entropy, passphrase, True, 1)
    first = Share.from_mnemonic(mnemonics[0][0])
    scheme = {"group_threshold": group_threshold, "groups": [{"threshold": t, "count": c} for t, c in groups],
              "identifier": first.identifier, "extendable": first.extendable,
              "iteration_exponent": first.iteration_exponent}
    return Split(scheme, mnemonics)


def combine_recovery(mnemonics: list[str], network: str = "regtest", passphrase: bytes = b"") -> Seed:
    """Rebuild the recovery seed from enough shares."""
    from shamir_mnemonic import combine_mnemonics
    try:
        entropy = combine_mnemonics([_norm(m) for m in mnemonics], passphrase)
    except Exception:
        entropy = None
    if entropy is None:  # outside the except block: the library's message quotes words
        raise ShareError("these shares do not rebuild a secret")
    return Seed(bip39.mnemonic_from_bytes(entropy), network)


def custody_key(share: str):
    """Ed25519 key = HKDF-SHA256(share, salt "custos-custody-v1", info "ed25519 custody key")."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"custos-custody-v1",
                info=b"ed25519 custody key").derive(_norm(share).encode())
    return Ed25519PrivateKey.from_private_bytes(seed)


def custody_public(share: str) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    return _b64(custody_key(share).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def custody_signature(share: str, holder_id: str, challenge_b64: str) -> str:
    msg = b"custos-custody-proof-v1\0" + holder_id.encode() + b"\0" + base64.b64decode(challenge_b64)
    return _b64(custody_key(share).sign(msg))


def setup_body(split: Split, email: str, holders: list[dict]) -> dict:
    """holders: [{"kind": "operator"|"device", "device_id"?, "label"?, "group_index", "member_index"}];
    adds each custody key; the operator's share travels in the body, no other share does."""
    out, operator = [], None
    for h in holders:
        share = split.share(h["group_index"], h["member_index"])
        out.append({**h, "custody_public_key": custody_public(share)})
        if h["kind"] == "operator":
            operator = share
    return {"scheme": split.scheme, "operator_share": operator, "email": email, "holders": out}


# -- the API -------------------------------------------------------------------------------
class RecoveryClient(CustosClient):
    @classmethod
    def like(cls, other: CustosClient) -> "RecoveryClient":
        return cls(other.base_url, other.key, other.device_id, other.transport)

    def setup(self, account_id: str, body: dict) -> dict:
        return self.call("PUT", f"/v1/accounts/{account_id}/recovery", body)

    def status(self, account_id: str) -> dict:
        return self.call("GET", f"/v1/accounts/{account_id}/recovery")

    def start(self, email: str, sealing_key_b64: str) -> dict:
        return self.call("POST", "/v1/recoveries", {"email": email, "sealing_key": sealing_key_b64})

    def otp(self, case_id: str, code: str) -> dict:
        return self.call("POST", f"/v1/recoveries/{case_id}/otp", {"otp": code})

    def case(self, case_id: str) -> dict:
        return self.call("GET", f"/v1/recoveries/{case_id}")

    def requests(self) -> list[dict]:
        return self.call("GET", "/v1/recoveries/requests")["requests"]

    def give_share(self, case_id: str, sealed_b64: str) -> dict:
        return self.call("POST", f"/v1/recoveries/{case_id}/shares", {"sealed_share": sealed_b64})

    def decline(self, case_id: str) -> dict:
        return self.call("POST", f"/v1/recoveries/{case_id}/decline")

    def cancel(self, case_id: str, freeze: bool = False) -> dict:
        return self.call("DELETE", f"/v1/recoveries/{case_id}" + ("?freeze=true" if freeze else ""))

    def complete(self, case_id: str, signature_hex: str) -> dict:
        return self.call("POST", f"/v1/recoveries/{case_id}/complete", {"signature": signature_hex})

    def custody_challenges(self) -> list[dict]:
        return self.call("GET", "/v1/custody/challenges")["challenges"]

    def custody_answer(self, holder_id: str, signature_b64: str) -> dict:
        return self.call("POST", f"/v1/custody/challenges/{holder_id}", {"signature": signature_b64})

    def build_sweep(self, account_id: str, destination_account_id: str, fee_rate: float | None = None) -> dict:
        body = {"destination_account_id": destination_account_id}
        if fee_rate is not None:
            body["fee_rate"] = fee_rate
        return self.call("POST", f"/v1/accounts/{account_id}/sweep", body)

    def put_backup(self, account_id: str, version: int, blob: bytes) -> dict:
        return self.call("PUT", f"/v1/accounts/{account_id}/backups",
                         {"version": version, "sha256": hashlib.sha256(blob).hexdigest(), "blob": _b64(blob)})

    def get_backup(self, account_id: str, version: int | None = None) -> tuple[dict, bytes]:
        meta = self.call("GET", f"/v1/accounts/{account_id}/backups/{'latest' if version is None else int(version)}")
        blob = base64.b64decode(meta["blob"])
        if hashlib.sha256(blob).hexdigest() != meta["sha256"]:
            raise ShareError("the backup does not match its digest")
        return meta, blob


# -- holders (contacts, and the owner's own phone) --------------------------------------------
@dataclass
class HeldShares:
    """Shares this device holds for others: account id → {"share", "from"}. A real app
    keeps them in secure storage."""
    items: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.items)

    @classmethod
    def from_json(cls, text: str) -> "HeldShares":
        return cls(json.loads(text) if text else {})


def deliver_share(messenger, contact_device_id: str, account_id: str, share: str) -> str:
    """Send one share to a contact end to end (Signal protocol); returns the message guid."""
    payload = json.dumps({"type": SHARE_MESSAGE, "account_id": account_id, "share": share}).encode()
    return messenger.send(contact_device_id, payload)


def collect_shares(messenger, held: HeldShares) -> int:
    """Receive queued messages and keep the recovery shares among them. Returns how many."""
    n = 0
    for r in messenger.receive():
        if r.plaintext is None:
            continue
        try:
            msg = json.loads(r.plaintext)
        except ValueError:
            continue
        if isinstance(msg, dict) and msg.get("type") == SHARE_MESSAGE:
            held.items[msg["account_id"]] = {"share": msg["share"], "from": r.sender}
            n += 1
    return n


def answer_custody(api: RecoveryClient, shares_by_holder: dict[str, str]) -> int:
    """Answer every open custody challenge for the shares we hold (holder id → share)."""
    n = 0
    for c in api.custody_challenges():
        share = shares_by_holder.get(c["holder_id"])
        if share:
            api.custody_answer(c["holder_id"], custody_signature(share, c["holder_id"], c["challenge"]))
            n += 1
    return n


def verification_phrase(case_id: str, sealing_key_b64: str, words: int = 4) -> str:
    from embit.wordlists.bip39 import WORDLIST
    digest = hashlib.sha256(b"custos-verification\0" + case_id.encode() + b"\0" +
                            base64.b64decode(sealing_key_b64)).digest()
    return " ".join(WORDLIST[int.from_bytes(digest[2 * i:2 * i + 2], "big") % 2048] for i in range(words))


def approve(api: RecoveryClient, request: dict, share: str, expected_phrase: str | None = None) -> dict:
    """Seal our share to the requester's key and hand it in. With `expected_phrase` (what
    the friend read out by phone), refuse a request whose phrase differs."""
    from nacl.public import PublicKey, SealedBox
    phrase = verification_phrase(request["case_id"], request["sealing_key"])
    if phrase != request["verification_phrase"] or (expected_phrase and expected_phrase != phrase):
        raise ShareError("the verification phrase does not match: do not hand over the share")
    sealed = SealedBox(PublicKey(base64.b64decode(request["sealing_key"]))).encrypt(_norm(share).encode())
    return api.give_share(request["case_id"], _b64(sealed))


# -- the new phone -----------------------------------------------------------------------
class Recoverer:
    """The recovering phone: an X25519 sealing key, then the shares it opens."""

    def __init__(self, api: RecoveryClient, network: str = "regtest", private_key: bytes | None = None):
        from nacl.public import PrivateKey
        self.api, self.network = api, network
        self.private = PrivateKey(private_key) if private_key else PrivateKey.generate()

    @property
    def sealing_key(self) -> str:
        return _b64(bytes(self.private.public_key))

    def start(self, email: str) -> dict:
        return self.api.start(email, self.sealing_key)

    def open_shares(self, case: dict) -> list[str]:
        from nacl.public import SealedBox
        box = SealedBox(self.private)
        out = [box.decrypt(base64.b64decode(s["sealed_share"])).decode() for s in case.get("sealed_shares", [])]
        if case.get("operator_share_sealed"):
            out.append(box.decrypt(base64.b64decode(case["operator_share_sealed"])).decode())
        return out

    def rebuild(self, case: dict, extra_shares: list[str] = (), passphrase: bytes = b"") -> Seed:
        return combine_recovery([*self.open_shares(case), *extra_shares], self.network, passphrase)

    @staticmethod
    def completion_signature(seed: Seed, case: dict) -> str:
        """DER signature (hex) by the recovery account key's child /9/0 over
        SHA-256("custos-recovery-complete-v1\\0" ‖ case id ‖ "\\0" ‖ challenge)."""
        key = seed.root.derive(f"m/{seed.path}/{COMPLETE_PATH}").key
        digest = hashlib.sha256(b"custos-recovery-complete-v1\0" + case["case_id"].encode() + b"\0" +
                                base64.b64decode(case["challenge"])).digest()
        return key.sign(digest).serialize().hex()

    def complete(self, case: dict, seed: Seed) -> dict:
        return self.api.complete(case["case_id"], self.completion_signature(seed, case))


def sign_sweep(seed: Seed, spend: dict, destination_descriptor: str) -> str:
    """Check the sweep pays only to our destination account (re-derived by embit), then
    sign it with the recovery key. Returns the signed PSBT (base64)."""
    from embit.descriptor import Descriptor
    from client.phone import VerificationError
    psbt = PSBT.from_string(spend["psbt"])
    desc = Descriptor.from_string(destination_descriptor.split("#")[0])
    for out in psbt.outputs:
        if not any(desc.derive(i).script_pubkey() == out.script_pubkey for i in range(0, 200)):
            raise VerificationError("a sweep output is not an address of my destination account")
    total_in = sum(i.witness_utxo.value for i in psbt.inputs)
    if total_in - sum(o.value for o in psbt.outputs) != spend["fee_sat"]:
        raise VerificationError("the fee the server states is not the PSBT's fee")
    from embit.transaction import SIGHASH
    if psbt.sign_with(seed.root, SIGHASH.ALL) == 0:
        raise VerificationError("the recovery key cannot sign this sweep")
    return psbt.to_string()
