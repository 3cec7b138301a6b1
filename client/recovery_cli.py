"""`python -m client recovery setup|cancel-change|status|start|otp|approve|complete|sweep`
and `python -m client backup put|get`.

State next to the client state file (mode 0600, reference client only — a real phone
keeps these in secure storage): `<state>.recovery.json` holds this device's recovery
work: shares it holds for others (holder id → share), this device's share of a requested
setup replacement until it applies (a replacement waits: `recovery.replace_setup`), and an
in-progress recovery (the sealing private key and case id). Seeds stay in `<state>.wallets.json` (accounts CLI).
"""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from client.recovery import (Recoverer, RecoveryClient, answer_custody, approve, setup_body, sign_sweep,
                             split_recovery)


def add_commands(sub) -> None:
    rec = sub.add_parser("recovery", help="social recovery").add_subparsers(dest="action", required=True)
    s = rec.add_parser("setup", help="split the recovery seed 2-of-3 and register it (prints the contact's share "
                                     "to deliver with `messages send`)")
    s.add_argument("account_id")
    s.add_argument("--email", required=True)
    s.add_argument("--contact", required=True, help="the contact's device id (holds member 1)")
    s.add_argument("--contact-role", choices=["holder", "beneficiary"], default="holder",
                   help="beneficiary: the contact may be named in the inheritance plan")
    cc = rec.add_parser("cancel-change", help="cancel the pending replacement of the recovery setup")
    cc.add_argument("account_id")
    cc.add_argument("change_id")
    st = rec.add_parser("status", help="holders and custody status; answers open custody challenges")
    st.add_argument("account_id", nargs="?")
    start = rec.add_parser("start", help="on the new phone: start a recovery")
    start.add_argument("--email", required=True)
    otp = rec.add_parser("otp", help="on the new phone: enter the emailed code")
    otp.add_argument("code")
    ap = rec.add_parser("approve", help="as a contact: hand your share to the requester (compare the phrase!)")
    ap.add_argument("case_id")
    ap.add_argument("--share", required=True, help="your share (or @file)")
    ap.add_argument("--phrase", help="the verification phrase your friend read out")
    co = rec.add_parser("complete", help="on the new phone: rebuild the recovery seed and complete")
    co.add_argument("--share", action="append", default=[], help="extra shares you have (e.g. cloud store)")
    sw = rec.add_parser("sweep", help="on the new phone: sweep the recovered account to a new account")
    sw.add_argument("account_id")
    sw.add_argument("destination_account_id")
    sw.add_argument("--fee-rate", type=float)
    b = sub.add_parser("backup", help="encrypted backups").add_subparsers(dest="action", required=True)
    bp = b.add_parser("put", help="upload an (already encrypted) file as the next version")
    bp.add_argument("account_id")
    bp.add_argument("file")
    bp.add_argument("--version", type=int, required=True)
    bg = b.add_parser("get")
    bg.add_argument("account_id")
    bg.add_argument("--version", type=int)
    bg.add_argument("--out", required=True)


class _State:
    def __init__(self, state: Path):
        self.path = Path(str(state) + ".recovery.json")
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {}

    def save(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.data, f)


def _arg_text(value: str) -> str:
    return Path(value[1:]).read_text().strip() if value.startswith("@") else value


def _hold(st: _State, setup: dict, device_id: str, share: str) -> None:
    st.data.setdefault("held", {}).update({h["holder_id"]: share for h in setup["holders"]
                                           if h["device_id"] == device_id})


def _adopt_applied(st: _State, setup: dict, device_id: str, account_id: str) -> None:
    """Once the requested replacement has applied (the setup in force is another one and
    nothing is pending), this device's new share answers for its new holder slots."""
    waiting = st.data.get("pending", {}).get(account_id)
    if waiting and setup["setup_id"] != waiting["replaces"] and not setup.get("pending_change"):
        _hold(st, setup, device_id, waiting["share"])
        del st.data["pending"][account_id]
        st.save()


def run(args, client, state_path: Path):
    from client.accounts_cli import _Wallets
    api = RecoveryClient.like(client)
    st = _State(state_path)
    a = args.action
    if args.command == "backup":
        if a == "put":
            return api.put_backup(args.account_id, args.version, Path(args.file).read_bytes())
        meta, blob = api.get_backup(args.account_id, args.version)
        Path(args.out).write_bytes(blob)
        return {k: v for k, v in meta.items() if k != "blob"}
    if a == "setup":
        phone = _Wallets(state_path).phone(args.account_id)
        split = split_recovery(phone)
        result = api.setup(args.account_id, setup_body(split, args.email, [
            {"kind": "device", "device_id": api.device_id, "label": "this phone", "group_index": 0, "member_index": 0},
            {"kind": "device", "device_id": args.contact, "role": args.contact_role, "group_index": 0,
             "member_index": 1},
            {"kind": "operator", "group_index": 0, "member_index": 2}]))
        note = "send contact_share to the contact end to end (messages send); keep nothing else"
        if result.get("pending_change"):      # a replacement: the setup in force stays until it applies
            st.data.setdefault("pending", {})[args.account_id] = {"replaces": result["setup_id"],
                                                                  "share": split.share(0, 0)}
            note = (f"the replacement applies at {result['pending_change']['effective_at']} at the earliest "
                    "(and after your confirmation on the verification channel, if you have one); " + note)
        else:
            _hold(st, result, api.device_id, split.share(0, 0))
        st.save()
        return {**result, "contact_share": split.share(0, 1), "note": note}
    if a == "cancel-change":
        st.data.get("pending", {}).pop(args.account_id, None)
        st.save()
        return api.call("DELETE", f"/v1/accounts/{args.account_id}/recovery/changes/{args.change_id}")
    if a == "status":
        if args.account_id:
            _adopt_applied(st, api.status(args.account_id), api.device_id, args.account_id)
        answered = answer_custody(api, st.data.get("held", {}))
        out = {"custody_answers": answered, "requests": api.requests()}
        if args.account_id:
            out["recovery"] = api.status(args.account_id)
            # a replacement that applied since the first read: never report a setup whose
            # new share this device has not adopted
            _adopt_applied(st, out["recovery"], api.device_id, args.account_id)
        return out
    if a == "start":
        rec = Recoverer(api)
        case = rec.start(args.email)
        st.data["recovering"] = {"case_id": case["case_id"], "sealing_private": base64.b64encode(
            bytes(rec.private)).decode()}
        st.save()
        return case
    if a == "approve":
        [req] = [r for r in api.requests() if r["case_id"] == args.case_id] or [None]
        if req is None:
            raise SystemExit("no such request for this device")
        return approve(api, req, _arg_text(args.share), args.phrase)
    if a in ("otp", "complete"):
        r = st.data.get("recovering") or {}
        if not r:
            raise SystemExit("no recovery in progress: run `recovery start` first")
        if a == "otp":
            return api.otp(r["case_id"], args.code)
        rec = Recoverer(api, private_key=base64.b64decode(r["sealing_private"]))
        case = api.case(r["case_id"])
        seed = rec.rebuild(case, [_arg_text(s) for s in args.share])
        done = rec.complete(case, seed)
        w = _Wallets(state_path)
        w.data[case["account_id"]] = {"network": seed.network, "platform": None, "recovery": seed.mnemonic}
        w.save()
        return done
    if a == "sweep":
        seeds = _Wallets(state_path).data.get(args.account_id) or {}
        if not seeds.get("recovery"):
            raise SystemExit("no recovered seed for this account: run `recovery complete` first")
        from client.phone import Seed
        seed = Seed(seeds["recovery"], seeds["network"])
        dest = api.call("GET", f"/v1/accounts/{args.destination_account_id}")
        spend = api.build_sweep(args.account_id, args.destination_account_id, args.fee_rate)
        return api.call("POST", f"/v1/spends/{spend['spend_id']}/signatures",
                        {"psbt": sign_sweep(seed, spend, dest["receive_descriptor"])})
    raise SystemExit(f"unknown action {a}")
