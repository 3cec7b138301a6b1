"""`python -m client [--server URL] [--state FILE] register|whoami|prices|contacts …|messages …|keys …|
inheritance …`.

The device key and id are kept in a JSON state file (default ~/.custos-client.json,
mode 0600) so `whoami` after `register` signs with the same key.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from client import accounts_cli, policy_cli
from client import inheritance_cli, recovery_cli
from client.phone import VerificationError
from client.sdk import ApiError, CustosClient, DeviceKey


def _load(path: Path) -> tuple[DeviceKey | None, str | None]:
    if not path.exists():
        return None, None
    state = json.loads(path.read_text())
    return DeviceKey.from_pem(state["key_pem"].encode()), state.get("device_id")


def _save(path: Path, client: CustosClient) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"key_pem": client.key.to_pem().decode(), "device_id": client.device_id}, f)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m client", description="Custos reference client")
    parser.add_argument("--server", default=os.environ.get("CUSTOS_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--state", default=os.environ.get("CUSTOS_CLIENT_STATE",
                                                          str(Path.home() / ".custos-client.json")))
    sub = parser.add_subparsers(dest="command", required=True)
    reg = sub.add_parser("register", help="create a device key (if none) and register it")
    reg.add_argument("--key-type", choices=["ed25519", "ecdsa-p256"], default="ed25519")
    reg.add_argument("--platform", default="cli")
    sub.add_parser("whoami", help="show the registered device")
    sub.add_parser("prices", help="the server's validated BTC price").add_argument("--currency", help="e.g. USD")
    _add_messaging_commands(sub)
    accounts_cli.add_commands(sub)
    policy_cli.add_commands(sub)
    recovery_cli.add_commands(sub)
    inheritance_cli.add_commands(sub)
    args = parser.parse_args(argv)

    state = Path(args.state)
    key, device_id = _load(state)
    try:
        if args.command == "register":
            client = CustosClient(args.server, key or DeviceKey.generate(args.key_type), device_id)
            result = client.register(platform=args.platform)
            _save(state, client)
        else:
            if not device_id:
                print("not registered yet: run `python -m client register` first", file=sys.stderr)
                return 2
            if args.command in ("policy", "spend", "freeze", "verify"):
                result = policy_cli.run(args, CustosClient(args.server, key, device_id))
            elif args.command == "account":
                result = accounts_cli.run(args, CustosClient(args.server, key, device_id), state)
            elif args.command in ("recovery", "backup"):
                result = recovery_cli.run(args, CustosClient(args.server, key, device_id), state)
            elif args.command == "inheritance":
                result = inheritance_cli.run(args, CustosClient(args.server, key, device_id), state)
            elif args.command == "prices":
                query = f"?currency={args.currency.upper()}" if args.currency else ""
                result = CustosClient(args.server, key, device_id).call("GET", f"/v1/prices{query}")
            elif args.command in ("contacts", "messages", "keys"):
                result = _run_messaging(args, CustosClient(args.server, key, device_id), state)
            else:
                result = CustosClient(args.server, key, device_id).whoami()
    except ApiError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except VerificationError as err:
        print(f"refusing to sign: {err}", file=sys.stderr)
        return 3
    except OSError as err:
        print(f"error: cannot reach {args.server}: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def _add_messaging_commands(sub) -> None:
    contacts = sub.add_parser("contacts", help="invite, accept and list contacts").add_subparsers(
        dest="action", required=True)
    inv = contacts.add_parser("invite", help="create an invite; prints its QR payload")
    inv.add_argument("--name", required=True, help="the display name your contact will see")
    inv.add_argument("--address", help="a receive address to put in the QR payload")
    acc = contacts.add_parser("accept", help="accept an invite from its QR payload (JSON)")
    acc.add_argument("qr_payload")
    acc.add_argument("--name", help="the display name the inviter will see")
    contacts.add_parser("list", help="list your contacts")
    messages = sub.add_parser("messages", help="send and fetch end-to-end encrypted messages").add_subparsers(
        dest="action", required=True)
    snd = messages.add_parser("send", help="encrypt and send a text message to a contact")
    snd.add_argument("device_id")
    snd.add_argument("text")
    messages.add_parser("fetch", help="fetch, decrypt and acknowledge your messages")
    keys = sub.add_parser("keys", help="Signal prekeys").add_subparsers(dest="action", required=True)
    keys.add_parser("count", help="one-time prekeys left on the server")
    keys.add_parser("replenish", help="upload keys (first time) or a new batch when low")


def _run_messaging(args, client, state: Path):
    """contacts/messages/keys subcommands. The Signal state lives next to the client
    state file (`<state>.signal.db`, mode 0600)."""
    from client.messaging import MessagingClient, SignalMessenger, ensure_keys
    messenger = SignalMessenger(MessagingClient.like(client), str(state) + ".signal.db")
    try:
        if args.command == "keys":
            if args.action == "replenish":
                ensure_keys(messenger)
            return {"count": messenger.api.key_count()}
        if args.command == "contacts":
            if args.action == "list":
                return {"contacts": messenger.api.contacts()}
            ensure_keys(messenger)
            if args.action == "invite":
                return messenger.invite(args.name, args.address)
            return messenger.accept(args.qr_payload, args.name)
        ensure_keys(messenger)
        if args.action == "send":
            return {"guid": messenger.send(args.device_id, args.text.encode())}
        return {"messages": [{"guid": r.guid, "from": r.sender,
                              "text": r.plaintext.decode("utf-8", "replace") if r.plaintext is not None else None,
                              "error": r.error, **({"system": r.system} if r.system is not None else {})}
                             for r in messenger.receive()]}
    finally:
        messenger.close()


if __name__ == "__main__":
    sys.exit(main())
