"""`python -m client inheritance set|show|claim|status|complete|sweep`.

The owner: `set ACCOUNT --beneficiary DEVICE[:LABEL] … [--waiting-days N]` and `show
ACCOUNT` (plan, pending changes, open claims), `decline CLAIM [--freeze]`. The
beneficiary: `claim ACCOUNT` (keeps the sealing private key next to the state file, mode
0600, in `<state>.inheritance.json`), `status [CLAIM]`, `complete --share WORDS|@file`
(opens the released operator share, rebuilds the recovery seed with our own share,
proves it; the seed goes to `<state>.wallets.json`), `sweep DESTINATION_ACCOUNT`.
"""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from client.inheritance import Claimant, InheritanceClient


def add_commands(sub) -> None:
    inh = sub.add_parser("inheritance", help="inheritance plan and claims").add_subparsers(dest="action",
                                                                                          required=True)
    s = inh.add_parser("set", help="owner: name beneficiaries (added ones apply after the loosening delay)")
    s.add_argument("account_id")
    s.add_argument("--beneficiary", action="append", default=[], help="DEVICE_ID[:LABEL]; none removes all")
    s.add_argument("--waiting-days", type=int)
    inh.add_parser("show", help="owner: the plan, pending changes, open claims").add_argument("account_id")
    d = inh.add_parser("decline", help="owner: cancel a claim")
    d.add_argument("claim_id")
    d.add_argument("--freeze", action="store_true", help="also freeze the account")
    inh.add_parser("claim", help="beneficiary: start a claim").add_argument("account_id")
    inh.add_parser("status", help="beneficiary: the claim's state").add_argument("claim_id", nargs="?")
    c = inh.add_parser("complete", help="beneficiary: rebuild the recovery key and prove it")
    c.add_argument("--share", required=True, help="the share you hold (or @file)")
    w = inh.add_parser("sweep", help="beneficiary: sweep every coin to an account of yours")
    w.add_argument("destination_account_id")
    w.add_argument("--fee-rate", type=float)


class _State:
    def __init__(self, state: Path):
        self.path = Path(str(state) + ".inheritance.json")
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {}

    def save(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.data, f)


def _share(value: str) -> str:
    return Path(value[1:]).read_text().strip() if value.startswith("@") else value


def run(args, client, state_path: Path):
    from client.accounts_cli import _Wallets
    api = InheritanceClient.like(client)
    st = _State(state_path)
    a = args.action
    if a == "set":
        bens = [{"device_id": b.split(":", 1)[0], "label": (b.split(":", 1) + [None])[1]} for b in args.beneficiary]
        return api.set_plan(args.account_id, bens, args.waiting_days)
    if a == "show":
        return api.plan(args.account_id)
    if a == "decline":
        return api.decline_claim(args.claim_id, args.freeze)
    if a == "claim":
        claimant = Claimant(api)
        claim = claimant.start(args.account_id)
        st.data["claim"] = {"claim_id": claim["claim_id"], "account_id": claim["account_id"],
                            "sealing_private": base64.b64encode(claimant.private_bytes).decode()}
        st.save()
        return claim
    mine = st.data.get("claim") or {}
    if a == "status":
        claim_id = args.claim_id or mine.get("claim_id")
        if not claim_id:
            raise SystemExit("no claim: run `inheritance claim ACCOUNT` first")
        out = api.claim(claim_id)
        return {k: v for k, v in out.items() if k not in ("operator_share_sealed", "challenge")}
    if not mine:
        raise SystemExit("no claim in progress: run `inheritance claim ACCOUNT` first")
    claimant = Claimant(api, private_key=base64.b64decode(mine["sealing_private"]))
    if a == "complete":
        claim = api.claim(mine["claim_id"])
        seed = claimant.rebuild(claim, _share(args.share))
        done = claimant.prove(claim, seed)
        w = _Wallets(state_path)
        w.data[claim["account_id"]] = {"network": seed.network, "platform": None, "recovery": seed.mnemonic}
        w.save()
        return {k: v for k, v in done.items() if k not in ("operator_share_sealed", "challenge")}
    if a == "sweep":
        seeds = _Wallets(state_path).data.get(mine["account_id"]) or {}
        if not seeds.get("recovery"):
            raise SystemExit("no rebuilt seed for this account: run `inheritance complete` first")
        from client.phone import Seed
        dest = api.call("GET", f"/v1/accounts/{args.destination_account_id}")
        return claimant.sweep(mine["claim_id"], Seed(seeds["recovery"], seeds["network"]), dest, args.fee_rate)
    raise SystemExit(f"unknown action {a}")
