"""`python -m client policy show|set|changes|cancel`, `spend approve`, `freeze`."""
from __future__ import annotations

import json


def add_commands(sub) -> None:
    pol = sub.add_parser("policy", help="an account's spending policy").add_subparsers(dest="action", required=True)
    pol.add_parser("show").add_argument("account_id")
    s = pol.add_parser("set", help="replace the rules (JSON); loosening parts wait out the delay")
    s.add_argument("account_id")
    s.add_argument("rules_json", help='e.g. \'{"limits": [{"window": "24h", "max_sat": 1000000}]}\'')
    pol.add_parser("changes").add_argument("account_id")
    c = pol.add_parser("cancel", help="cancel a pending change")
    c.add_argument("account_id")
    c.add_argument("change_id")
    spend = sub.add_parser("spend", help="spends awaiting you").add_subparsers(dest="action", required=True)
    a = spend.add_parser("approve", help="approve (or --deny) a spend as an approver device")
    a.add_argument("spend_id")
    a.add_argument("--deny", action="store_true")
    a.add_argument("--note")
    spend.add_parser("show").add_argument("spend_id")
    f = sub.add_parser("freeze", help="panic freeze an account (--lift asks to unfreeze: waits)")
    f.add_argument("account_id")
    f.add_argument("--lift", action="store_true")


def run(args, client):
    if args.command == "freeze":
        return client.call("POST", f"/v1/accounts/{args.account_id}/freeze", {"frozen": not args.lift})
    if args.command == "spend":
        if args.action == "show":
            return client.call("GET", f"/v1/spends/{args.spend_id}/approvals")
        body = {"decision": "deny" if args.deny else "approve"}
        if args.note:
            body["note"] = args.note
        return client.call("POST", f"/v1/spends/{args.spend_id}/approvals", body)
    base = f"/v1/accounts/{args.account_id}/policy"
    if args.action == "show":
        return client.call("GET", base)
    if args.action == "set":
        return client.call("PUT", base, json.loads(args.rules_json))
    if args.action == "changes":
        return client.call("GET", base + "/changes")
    return client.call("DELETE", f"{base}/changes/{args.change_id}")
