"""A client generated from /v1/openapi.json alone (openapi-python-client) can register a
device, create an account and read an error's `code` — no hand-written types (issue #15).
The only hand-written part is request signing (RFC 9421, an httpx request hook), which no
OpenAPI generator can know."""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from client.phone import PhoneWallet
from client.sdk import CustosClient, DeviceKey

VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def generated(app, tmp_path, monkeypatch):
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(app.test_client().get("/v1/openapi.json").get_json()))
    out = tmp_path / "custos_generated"
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run([str(VENV_BIN / "openapi-python-client"), "generate", "--path", str(spec),
                          "--output-path", str(out), "--meta", "none"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Warning" not in run.stdout, run.stdout
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("custos_generated")
    for name in [m for m in sys.modules if m == "custos_generated" or m.startswith("custos_generated.")]:
        del sys.modules[name]


def _signing_client(app, signer: CustosClient, keyid: list[str]) -> httpx.Client:
    """httpx over the app (WSGI) with every request signed as `signer` (keyid[0])."""
    def sign(request: httpx.Request):
        body = request.read()
        headers = signer.sign(request.method, str(request.url), {}, body, keyid=keyid[0])
        request.headers.update(headers)
    return httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://localhost",
                        event_hooks={"request": [sign]})


def test_a_generated_client_registers_creates_an_account_and_reads_an_error(app_factory, settings_factory,
                                                                             master_key, generated):
    app = app_factory(settings_factory(MASTER_KEY=master_key))     # bitcoind down: imports wait, as designed
    models = importlib.import_module("custos_generated.models")
    register = importlib.import_module("custos_generated.api.devices.post_v1_devices")
    create = importlib.import_module("custos_generated.api.accounts.post_v1_accounts")
    get_account = importlib.import_module("custos_generated.api.accounts.get_v1_accounts_account_id")

    key = DeviceKey.generate()
    signer, keyid = CustosClient("http://localhost", key), [key.fingerprint()]
    client = generated.Client(base_url="http://localhost")
    client.set_httpx_client(_signing_client(app, signer, keyid))

    device = register.sync(client=client, body=models.DeviceRegistration.from_dict(
        {"key_type": "ed25519", "public_key": key.public_b64(), "platform": "ios"}))
    assert isinstance(device, models.Device) and device.device_id.startswith("dev_")
    keyid[0] = device.device_id

    phone = PhoneWallet()
    account = create.sync(client=client, body=models.AccountCreate.from_dict(phone.account_request("generated")))
    assert isinstance(account, models.Account), account
    assert account.template == "2of3" and account.receive_descriptor.startswith("wsh(sortedmulti(2,")

    error = get_account.sync(client=client, account_id="acct_does_not_exist")
    assert isinstance(error, models.Error)
    assert error.error.code == "account_not_found" and isinstance(error.error.message, str)
