"""`python -m client policy show|set|changes|cancel`, `spend approve`, `freeze`."""
from __future__ import annotations

import json
import re
from decimal import Decimal


def add_commands(sub) -> None:
    pol = sub.add_parser("policy", help="an account's spending policy").add_subparsers(dest="action", required=True)
    pol.add_parser("show").add_argument("account_id")
    s = pol.add_parser("set", help="replace the rules (JSON and/or flags); loosening parts wait out the delay")
    s.add_argument("account_id")
    s.add_argument("rules_json", nargs="?", default="{}",
                   help='e.g. \'{"limits": [{"window": "24h", "max": "500.00", "currency": "USD"}]}\'')
    s.add_argument("--limit", action="append", default=[], metavar="WINDOW=AMOUNT",
                   help="a rolling limit: 24h=1000000 (satoshis) or 24h=500USD (fiat, converted at signing)")
    s.add_argument("--max-per-tx", metavar="AMOUNT", help="100000 (satoshis) or 250.00EUR (fiat)")
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


_AMOUNT = re.compile(r"^(\d+(?:\.\d{1,2})?)\s*([A-Za-z]{3})?$")


def _amount(text: str) -> dict:
    """"1000000" → {"max_sat": 1000000}; "500USD" / "500.00 usd" → {"max": "500.00", "currency": "USD"}."""
    m = _AMOUNT.match(text.strip())
    if not m or (m.group(2) is None and "." in m.group(1)):
        raise SystemExit(f"not an amount: {text!r} (satoshis, or a fiat amount like 500.00USD)")
    if m.group(2) is None:
        return {"max_sat": int(m.group(1))}
    return {"max": str(Decimal(m.group(1)).quantize(Decimal("0.01"))), "currency": m.group(2).upper()}


def rules_from(args) -> dict:
    """The rules JSON with --limit / --max-per-tx merged in (flags win per window and unit)."""
    rules = json.loads(args.rules_json)
    for item in args.limit:
        window, sep, amount = item.partition("=")
        if not sep:
            raise SystemExit(f"--limit wants WINDOW=AMOUNT, got {item!r}")
        limit = {"window": window.strip(), **_amount(amount)}
        rules["limits"] = [x for x in rules.get("limits", [])
                           if (x["window"], x.get("currency")) != (limit["window"], limit.get("currency"))] + [limit]
    if args.max_per_tx:
        cap = _amount(args.max_per_tx)
        if "max_sat" in cap:
            rules["max_per_tx_sat"] = cap["max_sat"]
        else:
            rules["max_per_tx"] = cap
    return rules


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
        return client.call("PUT", base, rules_from(args))
    if args.action == "changes":
        return client.call("GET", base + "/changes")
    return client.call("DELETE", f"{base}/changes/{args.change_id}")
