"""Run one pre-signed request through a fresh API app in THIS process and print
`<status> <error code or ->`. Used by the replay tests to play a second API process.

    python -m tests.integration.replay_process request.json
(settings come from the environment, like any API process)
"""
from __future__ import annotations

import json
import sys


def main(path: str) -> int:
    from app import create_app
    from config.settings import Settings
    req = json.load(open(path))
    app = create_app(Settings.from_env())
    resp = app.test_client().open(req["path"], method=req["method"], headers=req["headers"],
                                  data=req["body"].encode(), environ_base={"REMOTE_ADDR": "10.9.8.7"})
    code = (resp.get_json(silent=True) or {}).get("error", {}).get("code", "-")
    print(resp.status_code, code)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
