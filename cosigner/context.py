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
    import_descriptors: bool = False               # BITCOIND_IMPORT_DESCRIPTORS: mirror into Core wallets (never read)
    reservation_ttl: int = 900                     # SPEND_RESERVATION_TTL seconds
    fee_fallback_kvb: int = 20_000                 # FEE_FALLBACK_RATE in sat/kvB (0: disabled)
    fee_floor_kvb: int = 1_000                     # FEE_FLOOR_RATE in sat/kvB
    verification: object | None = None             # verification.context.VerificationContext (mailer, links)

