"""Account wallets in bitcoind: the only code that knows how accounts map to wallets.

`wallet_for(rpc, prefix, account_id)` is the single mapping (today: one blank watch-only
descriptor wallet per account, named prefix + account id). Sharding accounts over
wallets or nodes, or loading them lazily, changes this module only.

Every function here is idempotent and converges after a crash: creating a wallet that
exists loads it, importing descriptors already present is skipped, and a call on a
wallet that a bitcoind restart unloaded reloads it and retries once.
"""
from __future__ import annotations

import time

from chain.errors import (RPC_WALLET_ALREADY_LOADED, RPC_WALLET_ERROR, RPC_WALLET_NOT_FOUND, ChainRejected)
from chain.rpc import BitcoinRPC

DEFAULT_RANGE_END = 999


class AccountWallet:
    """A bitcoind wallet bound to one account; reloads itself if bitcoind unloaded it."""

    def __init__(self, node: BitcoinRPC, name: str):
        self.node = node
        self.name = name
        self.rpc = node.for_wallet(name)

    def call(self, method: str, *params):
        try:
            return self.rpc.call(method, *params)
        except ChainRejected as err:
            if err.code != RPC_WALLET_NOT_FOUND:
                raise
            load(self.node, self.name)
            return self.rpc.call(method, *params)


def wallet_for(node: BitcoinRPC, prefix: str, account_id: str) -> AccountWallet:
    """The wallet that tracks `account_id`."""
    return AccountWallet(node, f"{prefix}{account_id}")


def load(node: BitcoinRPC, name: str) -> None:
    """Load a wallet; already loaded is fine."""
    try:
        node.call("loadwallet", name)
    except ChainRejected as err:
        if err.code != RPC_WALLET_ALREADY_LOADED and "already loaded" not in err.message:
            raise


def ensure_imported(wallet: AccountWallet, descriptors: list[tuple[str, bool]], *,
                    timestamp: int | str = "now", range_end: int = DEFAULT_RANGE_END, ranged: bool = True) -> bool:
    """Create (or load) the blank watch-only wallet and import `descriptors`
    [(descriptor with checksum, internal)] as active ranged descriptors. Returns True if
    anything was imported. `timestamp` is "now" for new accounts or a Unix time (the
    wallet's birthday) to rescan for restored ones."""
    node = wallet.node
    try:
        node.call("createwallet", wallet.name, True, True, "", False, True, True)
    except ChainRejected as err:
        if err.code not in (RPC_WALLET_ERROR, RPC_WALLET_ALREADY_LOADED) and "exists" not in err.message:
            raise
        load(node, wallet.name)
    present = {d["desc"].split("#")[0] for d in wallet.call("listdescriptors").get("descriptors", [])}
    wanted = [(desc, internal) for desc, internal in descriptors
              if _normalize(desc) not in {_normalize(p) for p in present}]
    if not wanted:
        return False
    requests = []
    for desc, internal in wanted:
        req = {"desc": desc, "timestamp": timestamp}
        if ranged:
            req.update(active=True, internal=internal, range=[0, range_end])
        requests.append(req)
    results = wallet.call("importdescriptors", requests)
    for r in results:
        if not r.get("success"):
            err = r.get("error") or {}
            raise ChainRejected(int(err.get("code", -1)), str(err.get("message", "import failed")))
    return True


def _normalize(desc: str) -> str:
    return desc.split("#")[0].replace("'", "h")


def wait_synced(node: BitcoinRPC) -> None:
    """Wallet notifications are asynchronous in Core: wait for them."""
    node.call("syncwithvalidationinterfacequeue")


def now() -> int:
    return int(time.time())
