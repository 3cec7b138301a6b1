"""`flask custos rotate-master-key` re-wraps every cosigner key; the keys still open."""
from __future__ import annotations

import base64
import os

from cosigner.model import CosignerKey
from cosigner.vault import LocalKeyring, SealedSecret, master_key_id, open_secret, seal
from store.base import utcnow
from store.session import session_scope


def test_rotation_cli_rewraps_all_keys(app_factory, settings_factory):
    old, new = os.urandom(32), os.urandom(32)
    s_old = settings_factory(MASTER_KEY=base64.b64encode(old).decode())
    with session_scope(s_old.database_url) as s:
        for i in range(3):
            sealed = seal(LocalKeyring(old), f"tprv-{i}".encode(), f"key_{i}")
            s.add(CosignerKey(id=f"key_{i}", network="regtest", fingerprint="00000000", path="48h/1h/0h/2h",
                              xpub="tpub", kek_id=sealed.kek_id, wrapped_dek=sealed.wrapped_dek,
                              ciphertext=sealed.ciphertext, created_at=utcnow()))
    app = app_factory(settings_factory(MASTER_KEY=base64.b64encode(new).decode(),
                                       MASTER_KEY_PREVIOUS=base64.b64encode(old).decode()))
    result = app.test_cli_runner().invoke(args=["custos", "rotate-master-key", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert "rewrapped=3 already_current=0" in result.output
    assert base64.b64encode(new).decode() not in result.output
    again = app.test_cli_runner().invoke(args=["custos", "rotate-master-key"])
    assert "rewrapped=0 already_current=3" in again.output
    with session_scope(s_old.database_url) as s:
        for i in range(3):
            key = s.get(CosignerKey, f"key_{i}")
            assert key.kek_id == master_key_id(new)
            assert open_secret(LocalKeyring(new), SealedSecret(key.kek_id, key.wrapped_dek, key.ciphertext),
                               key.id) == f"tprv-{i}".encode()
