"""State survives a restart: chain, mempool, wallets and their descriptors."""
from __future__ import annotations

from decimal import Decimal

from devnet.harness import start_node
from _devnet_kit import Key, with_checksum, hd_cosigner


def test_restart_keeps_chain_mempool_and_wallets(tmp_path):
    datadir = tmp_path / "persist"
    dest = Key()
    _, k = hd_cosigner()
    watch_desc = with_checksum(f"wpkh({k}/0/*)")
    with start_node(datadir) as node:
        rpc = node.rpc()
        rpc.createwallet("w")
        w = node.rpc("w")
        rpc.generatetoaddress(101, w.getnewaddress())
        rpc.createwallet("watch", True, True)
        node.rpc("watch").importdescriptors([{"desc": watch_desc, "active": True, "timestamp": "now"}])
        watch_address = node.rpc("watch").getnewaddress()
        paid = w.sendtoaddress(watch_address, Decimal("2"))
        rpc.generatetoaddress(1, w.getnewaddress())
        pending = w.sendtoaddress(dest.address, Decimal("1"))
        rpc.syncwithvalidationinterfacequeue()
        before = {"count": rpc.getblockcount(), "best": rpc.getbestblockhash(),
                  "balances": w.getbalances()["mine"], "watch": node.rpc("watch").getbalances()["mine"],
                  "descs": node.rpc("watch").listdescriptors()["descriptors"]}
    with start_node(datadir) as node:
        rpc = node.rpc()
        assert rpc.getblockcount() == before["count"]
        assert rpc.getbestblockhash() == before["best"]
        assert pending in rpc.getrawmempool()
        for name in ("w", "watch"):
            if name not in rpc.listwallets():
                rpc.loadwallet(name)
        rpc.syncwithvalidationinterfacequeue()
        assert node.rpc("w").getbalances()["mine"] == before["balances"]
        watch = node.rpc("watch")
        assert watch.getbalances()["mine"] == before["watch"]
        assert watch.getbalances()["mine"]["trusted"] == Decimal("2")
        assert watch.listdescriptors()["descriptors"] == before["descs"]
        assert [u["txid"] for u in watch.listunspent()] == [paid]
        assert watch.getnewaddress() != watch_address       # next_index persisted
        rpc.generatetoaddress(1, dest.address)
        assert rpc.getblockcount() == before["count"] + 1
