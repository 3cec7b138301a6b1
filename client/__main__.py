"""`python -m client [--server URL] [--state FILE] register|whoami`.

The device key and id are kept in a JSON state file (default ~/.custos-client.json,
mode 0600) so `whoami` after `register` signs with the same key.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

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
            result = CustosClient(args.server, key, device_id).whoami()
    except ApiError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: cannot reach {args.server}: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
