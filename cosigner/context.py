"""What cosigner services need from the outside, built once from settings."""
from __future__ import annotations

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
    import_descriptors: bool = True                # BITCOIND_IMPORT_DESCRIPTORS: mirror into Core wallets

