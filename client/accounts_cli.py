"""`python -m client account create|list|receive|balance|history|send|bump|export`
(`balance`/`history` take `--currency USD` for fiat values).

The phone's seeds (platform and recovery mnemonics) live in `<state>.wallets.json`
(mode 0600), one entry per account. This is a reference client for development and
tests: a real phone keeps them in its secure storage.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

from client.phone import PhoneWallet


def add_commands(sub) -> None:
    acct = sub.add_parser("account", help="multisig accounts and spends").add_subparsers(dest="action", required=True)
    c = acct.add_parser("create", help="new seeds, new 2-of-3 account; verifies the server's descriptors")
    c.add_argument("--name", required=True)
    c.add_argument("--network", default="regtest")
    c.add_argument("--template", choices=["2of3", "2of3_decaying"], default="2of3")
    c.add_argument("--decay-blocks", type=int)
    acct.add_parser("list")
    acct.add_parser("receive").add_argument("account_id")
    for name in ("balance", "history"):
        p = acct.add_parser(name, help=f"{name} in satoshis; --currency adds fiat values")
        p.add_argument("account_id")
        p.add_argument("--currency", help="e.g. USD (one the server prices)")
    s = acct.add_parser("send", help="build, verify, sign and submit a spend")
    s.add_argument("account_id")
    s.add_argument("address")
    s.add_argument("amount_sat", type=int)
    s.add_argument("--fee-rate", type=float, help="sat/vB")
    b = acct.add_parser("bump", help="fee-bump a broadcast spend (RBF), verify, sign, submit")
    b.add_argument("spend_id")
    b.add_argument("fee_rate", type=float)
    e = acct.add_parser("export")
    e.add_argument("account_id")
    e.add_argument("--format", choices=["descriptors", "bsms", "sparrow"], default="descriptors")


class _Wallets:
    def __init__(self, state: Path):
        self.path = Path(str(state) + ".wallets.json")
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {}

    def save(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.data, f)

    def phone(self, account_id: str) -> PhoneWallet:
        w = self.data.get(account_id)
        if w is None:
            raise SystemExit(f"no seeds for {account_id} in {self.path}")
        return PhoneWallet(w["network"], w["platform"], w["recovery"])


def run(args, client, state: Path):
    wallets = _Wallets(state)
    a = args.action
    if a == "create":
        phone = PhoneWallet(args.network)
        account = client.call("POST", "/v1/accounts", phone.account_request(args.name, args.template, args.decay_blocks))
        phone.verify_account(account)
        wallets.data[account["account_id"]] = {"network": args.network, "platform": phone.platform.mnemonic,
                                               "recovery": phone.recovery.mnemonic}
        wallets.save()
        return account
    if a == "list":
        return client.call("GET", "/v1/accounts")
    if a == "receive":
        return client.call("POST", f"/v1/accounts/{args.account_id}/addresses")
    if a in ("balance", "history"):
        query = f"?currency={quote(args.currency.upper())}" if args.currency else ""
        what = "balance" if a == "balance" else "transactions"
        return client.call("GET", f"/v1/accounts/{args.account_id}/{what}{query}")
    if a == "export":
        return client.call("GET", f"/v1/accounts/{args.account_id}/export?format={args.format}")
    if a == "send":
        account = client.call("GET", f"/v1/accounts/{args.account_id}")
        phone = wallets.phone(args.account_id)
        outputs = [{"address": args.address, "amount_sat": args.amount_sat}]
        body = {"outputs": outputs}
        if args.fee_rate:
            body["fee_rate_sat_vb"] = args.fee_rate
        spend = client.call("POST", f"/v1/accounts/{args.account_id}/spends", body)
        psbt = phone.verify_spend(account, spend, outputs)
        return client.call("POST", f"/v1/spends/{spend['spend_id']}/signatures", {"psbt": phone.sign(psbt)})
    if a == "bump":
        old = client.call("GET", f"/v1/spends/{args.spend_id}")
        account = client.call("GET", f"/v1/accounts/{old['account_id']}")
        phone = wallets.phone(old["account_id"])
        new = client.call("POST", f"/v1/spends/{args.spend_id}/bump", {"fee_rate": args.fee_rate})
        externals = [{"address": o["address"], "amount_sat": o["amount_sat"]} for o in old["outputs"] if not o["change"]]
        psbt = phone.verify_spend(account, new, externals)
        return client.call("POST", f"/v1/spends/{new['spend_id']}/signatures", {"psbt": phone.sign(psbt)})
    raise SystemExit(f"unknown action {a}")



