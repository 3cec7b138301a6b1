"""Inheritance for the reference client: the owner's plan, the beneficiary's claim
(an X25519 sealing key, then the operator's share it opens), the recovery-key proof
(the same completion signature as recovery, over the claim id and challenge) and the
sweep to an account of the beneficiary's own. Like client/recovery.py this does not
import the server's code."""
from __future__ import annotations

from client.phone import Seed
from client.recovery import Recoverer, RecoveryClient, combine_recovery, sign_sweep


class InheritanceClient(RecoveryClient):
    # -- the owner
    def set_plan(self, account_id: str, beneficiaries: list[dict], waiting_days: int | None = None) -> dict:
        body = {"beneficiaries": beneficiaries}
        if waiting_days is not None:
            body["waiting_days"] = waiting_days
        return self.call("PUT", f"/v1/accounts/{account_id}/inheritance", body)

    def plan(self, account_id: str) -> dict:
        return self.call("GET", f"/v1/accounts/{account_id}/inheritance")

    def cancel_plan_change(self, account_id: str, change_id: str) -> dict:
        return self.call("DELETE", f"/v1/accounts/{account_id}/inheritance/changes/{change_id}")

    def decline_claim(self, claim_id: str, freeze: bool = False) -> dict:
        return self.call("DELETE", f"/v1/inheritance/claims/{claim_id}" + ("?freeze=true" if freeze else ""))

    # -- the beneficiary
    def start_claim(self, account_id: str, sealing_key_b64: str) -> dict:
        return self.call("POST", "/v1/inheritance/claims", {"account_id": account_id, "sealing_key": sealing_key_b64})

    def claim(self, claim_id: str) -> dict:
        return self.call("GET", f"/v1/inheritance/claims/{claim_id}")

    def prove_claim(self, claim_id: str, signature_hex: str) -> dict:
        return self.call("POST", f"/v1/inheritance/claims/{claim_id}/complete", {"signature": signature_hex})

    def build_claim_sweep(self, claim_id: str, destination_account_id: str, fee_rate: float | None = None) -> dict:
        body = {"destination_account_id": destination_account_id}
        if fee_rate is not None:
            body["fee_rate"] = fee_rate
        return self.call("POST", f"/v1/inheritance/claims/{claim_id}/sweep", body)

    def submit_claim_sweep(self, claim_id: str, psbt_b64: str) -> dict:
        return self.call("POST", f"/v1/inheritance/claims/{claim_id}/sweep/signatures", {"psbt": psbt_b64})


class Claimant:
    """The beneficiary's side of one claim: its sealing key, then the recovery seed
    rebuilt from its own share and the released operator share."""

    def __init__(self, api: InheritanceClient, network: str = "regtest", private_key: bytes | None = None):
        self.api, self.network = api, network
        self._box = Recoverer(api, network, private_key)

    @property
    def sealing_key(self) -> str:
        return self._box.sealing_key

    @property
    def private_bytes(self) -> bytes:
        return bytes(self._box.private)

    def start(self, account_id: str) -> dict:
        return self.api.start_claim(account_id, self.sealing_key)

    def rebuild(self, claim: dict, own_share: str) -> Seed:
        """Open the released operator share and combine it with our own."""
        operator = self._box.open_shares({"operator_share_sealed": claim.get("operator_share_sealed")})
        return combine_recovery([own_share, *operator], self.network)

    def prove(self, claim: dict, seed: Seed) -> dict:
        sig = Recoverer.completion_signature(seed, {"case_id": claim["claim_id"], "challenge": claim["challenge"]})
        return self.api.prove_claim(claim["claim_id"], sig)

    def sweep(self, claim_id: str, seed: Seed, destination: dict, fee_rate: float | None = None) -> dict:
        """Build the sweep to `destination` (an account of ours, as GET /v1/accounts/{id}
        returns it), check it pays only there, sign with the recovery key and submit."""
        spend = self.api.build_claim_sweep(claim_id, destination["account_id"], fee_rate)
        return self.api.submit_claim_sweep(claim_id, sign_sweep(seed, spend, destination["receive_descriptor"]))
