"""What cosigner services need from the outside, built once from settings."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

from cosigner.psbt import FeeCaps
from cosigner.vault import KeyWrapper


@dataclass
class CosignerContext:
    network: str
    wallet_prefix: str
    caps: FeeCaps
    keyring: KeyWrapper
    node: object                                   # chain.rpc.BitcoinRPC
    notify: Callable[..., None]                    # notify(session, device_id, kind, now)


def record_notification(session, device_id: str, kind: str, now: dt.datetime) -> None:
    """The default notifier: an audit event per notification (push arrives with messaging)."""
    from audit import services as audit
    audit.record(session, actor="system", action=f"notify.{kind}", subject=device_id, details={}, now=now)
