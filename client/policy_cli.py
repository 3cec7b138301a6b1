"""`python -m client policy show|set|changes|cancel`, `spend approve|show|verify`, `freeze`,
`verify email set|confirm`, `verify totp enroll|confirm`, `verify status|confirm`."""
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
    v = spend.add_parser("verify", help="confirm a spend awaiting verification with your authenticator's code")
    v.add_argument("spend_id")
    v.add_argument("code")
    _add_verify(sub)
    f = sub.add_parser("freeze", help="panic freeze an account (--lift asks to unfreeze: waits)")
    f.add_argument("account_id")
    f.add_argument("--lift", action="store_true")


def _add_verify(sub) -> None:
    ver = sub.add_parser("verify", help="out-of-band channels: e-mail and authenticator").add_subparsers(
        dest="channel", required=True)
    email = ver.add_parser("email").add_subparsers(dest="action", required=True)
    es = email.add_parser("set", help="register an address (a code is mailed to it)")
    es.add_argument("account_id")
    es.add_argument("address")
    ec = email.add_parser("confirm", help="confirm the address with the mailed code")
    ec.add_argument("account_id")
    ec.add_argument("code")
    totp = ver.add_parser("totp").add_subparsers(dest="action", required=True)
    totp.add_parser("enroll", help="a new authenticator: prints the otpauth:// URI once").add_argument("account_id")
    tc = totp.add_parser("confirm", help="confirm the authenticator with its first code")
    tc.add_argument("account_id")
    tc.add_argument("code")
    ver.add_parser("status", help="channels and pending verifications").add_argument("account_id")
    rc = ver.add_parser("confirm", help="confirm a pending verification (policy or channel change) by TOTP")
    rc.add_argument("request_id")
    rc.add_argument("code")


def run_verify(args, client):
    if args.channel == "email":
        return client.verify_email_set(args.account_id, args.address) if args.action == "set" else \
            client.verify_email_confirm(args.account_id, args.code)
    if args.channel == "totp":
        if args.action == "enroll":
            out = client.verify_totp_enroll(args.account_id)
            return {"channel": out["channel"], "otpauth_uri": out["otpauth_uri"]}
        return client.verify_totp_confirm(args.account_id, args.code)
    if args.channel == "status":
        return client.verify_status(args.account_id)
    return client.verify_request(args.request_id, args.code)


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
    if args.command == "verify":
        return run_verify(args, client)
    if args.command == "freeze":
        return client.call("POST", f"/v1/accounts/{args.account_id}/freeze", {"frozen": not args.lift})
    if args.command == "spend":
        if args.action == "show":
            return client.call("GET", f"/v1/spends/{args.spend_id}/approvals")
        if args.action == "verify":
            return client.verify_spend(args.spend_id, args.code)
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
