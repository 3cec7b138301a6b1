"""A fake bitcoind for the chain-index unit tests: a chain of blocks (with forks) and a
mempool, answering the RPCs the follower uses in Core's JSON shapes (getblock 3 with
prevouts). It subclasses the real RPC client and counts calls."""
from __future__ import annotations

import os
from decimal import Decimal

from embit.bip32 import HDKey
from embit.networks import NETWORKS
from sqlalchemy import create_engine

from chain.errors import RPCError
from chain.rpc import BitcoinRPC

NET = NETWORKS["regtest"]


def btc(sat: int) -> Decimal:
    return Decimal(sat) / 100_000_000


def random_descriptors() -> tuple[str, str]:
    """(receive, change) wpkh descriptors of a fresh key."""
    root = HDKey.from_seed(os.urandom(32), version=NET["xprv"])
    acct = root.derive("m/84h/1h/0h").to_public().to_base58(NET["xpub"])
    return f"wpkh({acct}/0/*)", f"wpkh({acct}/1/*)"


def foreign_script() -> bytes:
    return b"\x00\x14" + os.urandom(20)


def tx(inputs: list[tuple[str, int, int, bytes]], outputs: list[tuple[int, bytes]], *, coinbase=False) -> dict:
    """A transaction in getblock-3 JSON: inputs (txid, vout, value, script) with prevouts."""
    vin = [{"coinbase": "00"}] if coinbase else [
        {"txid": t, "vout": n, "prevout": {"generated": False, "height": 1, "value": btc(v),
                                           "scriptPubKey": {"hex": s.hex()}}} for t, n, v, s in inputs]
    out = {"txid": os.urandom(32).hex(), "vin": vin,
           "vout": [{"n": i, "value": btc(v), "scriptPubKey": {"hex": s.hex()}} for i, (v, s) in enumerate(outputs)]}
    if not coinbase:
        out["fee"] = btc(sum(v for _, _, v, _ in inputs) - sum(v for v, _ in outputs))
    return out


class FakeNode(BitcoinRPC):
    def __init__(self):
        super().__init__("http://127.0.0.1:9")
        genesis = {"hash": "00" * 31 + "01", "height": 0, "time": 1_600_000_000, "tx": [tx([], [(0, b"\x6a")],
                                                                                          coinbase=True)]}
        self.blocks = {genesis["hash"]: genesis}
        self.active = [genesis["hash"]]
        self.mempool: dict[str, dict] = {}
        self.sequence = 1                   # Core's mempool sequence starts at 1
        self.notifications: list[tuple[str, str, int]] = []   # (A|R, txid, mempool sequence), as ZMQ `sequence`
        self.calls: list[str] = []

    # ---- building the chain ----------------------------------------------------------
    def mine(self, txs: list[dict] | None = None, *, parent: str | None = None) -> str:
        """A block with `txs` (default: the whole mempool) on `parent` (default: tip);
        becomes the tip when it is the longest branch."""
        parent = parent or self.active[-1]
        height = self.blocks[parent]["height"] + 1
        body = list(self.mempool.values()) if txs is None else txs
        block = {"hash": os.urandom(32).hex(), "height": height, "previousblockhash": parent,
                 "time": 1_600_000_000 + height * 600, "tx": [tx([], [(50_000_000, foreign_script())],
                                                                  coinbase=True)] + body}
        self.blocks[block["hash"]] = block
        branch = self._branch(block["hash"])
        if len(branch) > len(self.active):
            self.active = branch
        for t in body:
            if self.mempool.pop(t["txid"], None) is not None:
                self.sequence += 1          # a mined removal takes a number but sends nothing
        return block["hash"]

    def _branch(self, tip: str) -> list[str]:
        out = [tip]
        while self.blocks[out[-1]]["height"] > 0:
            out.append(self.blocks[out[-1]]["previousblockhash"])
        return list(reversed(out))

    def broadcast(self, t: dict) -> str:
        self.mempool[t["txid"]] = t
        self.notifications.append(("A", t["txid"], self.sequence))
        self.sequence += 1
        return t["txid"]

    def evict(self, txid: str) -> None:
        if self.mempool.pop(txid, None) is not None:
            self.notifications.append(("R", txid, self.sequence))
            self.sequence += 1

    def drain(self) -> list:
        """The `sequence` notifications since the last drain, as the ZMQ listener parses
        them (chain.zmqwake.Notification), for a chain.feed.FeedWriter to record."""
        from chain.zmqwake import Notification
        out = [Notification("sequence", txid, label, seq) for label, txid, seq in self.notifications]
        self.notifications.clear()
        return out

    # ---- RPC ----------------------------------------------------------------------------
    def call(self, method: str, *params):
        self.calls.append(method)
        fn = getattr(self, f"rpc_{method}", None)
        if fn is None:
            raise RPCError(-32601, "Method not found")
        return fn(*params)

    def batch(self, calls):
        self.calls.append("batch")
        out = []
        for method, params in calls:
            try:
                out.append(getattr(self, f"rpc_{method}")(*params))
            except RPCError as err:
                out.append(err)
        return out

    def rpc_getbestblockhash(self):
        return self.active[-1]

    def rpc_getblockcount(self):
        return len(self.active) - 1

    def rpc_getblockhash(self, height):
        if not 0 <= height < len(self.active):
            raise RPCError(-8, "Block height out of range")
        return self.active[height]

    def _header(self, h):
        b = self.blocks.get(h)
        if b is None:
            raise RPCError(-5, "Block not found")
        on = b["height"] < len(self.active) and self.active[b["height"]] == h
        out = {k: v for k, v in b.items() if k != "tx"}
        out["confirmations"] = len(self.active) - b["height"] if on else -1
        if on and b["height"] + 1 < len(self.active):
            out["nextblockhash"] = self.active[b["height"] + 1]
        return out

    def rpc_getblockheader(self, h, verbose=True):
        return self._header(h)

    def rpc_getblock(self, h, verbosity=1):
        out = self._header(h)
        out["tx"] = self.blocks[h]["tx"]
        return out

    def rpc_getrawmempool(self, verbose=False, sequence=False):
        if sequence:
            return {"txids": list(self.mempool), "mempool_sequence": self.sequence}
        return list(self.mempool)

    def rpc_getmempoolentry(self, txid):
        if txid not in self.mempool:
            raise RPCError(-5, "Transaction not in mempool")
        return {"vsize": 100, "depends": []}

    def rpc_getrawtransaction(self, txid, verbose=1):
        if txid not in self.mempool:
            raise RPCError(-5, "No such mempool or blockchain transaction")
        t = self.mempool[txid]
        return {**t, "vin": [{k: v for k, v in vin.items() if k != "prevout"} for vin in t["vin"]],
                "fee": None}


def add_account(url: str, descs: tuple[str, str] | None = None) -> tuple[str, str, str]:
    """A device and a watch-only account with (receive, change) descriptors, registered
    in the chain index. Returns (account id, receive, change)."""
    import datetime as dt
    from chain import scripts
    from cosigner.model import Account
    from devices.model import Device
    from store.session import session_scope
    now = dt.datetime.now(dt.timezone.utc)
    receive, change = descs or random_descriptors()
    aid, dev = f"acct_{os.urandom(6).hex()}", f"dev_{os.urandom(6).hex()}"
    with session_scope(url) as s:
        s.add(Device(id=dev, key_type="ed25519", public_key=b"k" * 32, key_fingerprint=os.urandom(16).hex(),
                     created_at=now))
        s.flush()
        s.add(Account(id=aid, owner_device_id=dev, name="t", network="regtest", template="watch_only",
                      receive_descriptor=receive, change_descriptor=change, next_receive_index=0, created_at=now))
        s.flush()
        scripts.register_account(s, aid, [(0, receive), (1, change)], now)
    return aid, receive, change


def sqlite_url(tmp_path) -> str:
    """A fresh SQLite database with every table (no migrations needed for unit tests)."""
    from app import models  # noqa: F401
    from store.base import Base
    url = f"sqlite:///{tmp_path / 'chain.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    return url
