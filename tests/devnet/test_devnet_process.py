"""`python -m devnet` as a process: ready line, cookie auth, SIGTERM, and a SIGKILL while
mining never leaving a half-applied block. (About devnet itself, so it always runs devnet.)"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from chain.errors import RPCError, RPCUnavailable
from devnet.harness import free_port, wait_for_rpc, Node

ROOT = Path(__file__).resolve().parents[2]


def _spawn(datadir: Path, port: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "devnet", "--datadir", str(datadir), "--rpcport", str(port),
                             "--fallbackfee", "0.0002", *extra], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _cookie_node(datadir: Path, port: int, proc) -> Node:
    line = proc.stdout.readline()
    assert line.startswith(f"devnet ready rpc=http://127.0.0.1:{port}"), line
    user, password = (datadir / "regtest" / ".cookie").read_text().split(":", 1)
    node = Node(f"http://127.0.0.1:{port}", user, password, datadir)
    wait_for_rpc(node, process=proc)
    return node


def test_process_cookie_auth_and_sigterm(tmp_path):
    port = free_port()
    proc = _spawn(tmp_path, port)
    try:
        node = _cookie_node(tmp_path, port, proc)
        assert node.user == "__cookie__"
        assert node.rpc().getblockchaininfo()["chain"] == "regtest"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert not (tmp_path / "regtest" / ".cookie").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stop_rpc_and_sigkill_during_mining_leaves_whole_blocks(tmp_path):
    port = free_port()
    proc = _spawn(tmp_path, port, "--rpcuser", "u", "--rpcpassword", "p")
    try:
        proc.stdout.readline()
        node = Node(f"http://127.0.0.1:{port}", "u", "p", tmp_path)
        wait_for_rpc(node, process=proc)
        rpc = node.rpc()
        address = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
        miner = threading.Thread(target=lambda: _ignore(rpc.generatetoaddress, 50_000, address))
        miner.start()
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        miner.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    port = free_port()
    proc = _spawn(tmp_path, port, "--rpcuser", "u", "--rpcpassword", "p")
    try:
        proc.stdout.readline()
        node = Node(f"http://127.0.0.1:{port}", "u", "p", tmp_path)
        wait_for_rpc(node, process=proc)
        rpc = node.rpc()
        height = rpc.getblockcount()
        assert 0 < height < 50_000
        tip = rpc.getblock(rpc.getbestblockhash())
        assert tip["height"] == height and tip["nTx"] == 1
        assert rpc.getblockheader(rpc.getblockhash(height - 1))["nextblockhash"] == tip["hash"]
        rpc.generatetoaddress(1, address)                   # chain continues from the restored tip
        assert rpc.getblockcount() == height + 1
        assert rpc.stop() 
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _ignore(fn, *args):
    try:
        fn(*args)
    except (RPCError, RPCUnavailable):
        pass



def test_automine_mines_pending_transactions(tmp_path):
    """devnet's --automine option (in-process form): a mempool transaction gets mined
    without anyone calling generate*."""
    from devnet.server import DevnetServer
    server = DevnetServer(tmp_path, 0, user="u", password="p", fallbackfee=20_000, automine=0.1).start()
    try:
        node = Node(server.url, "u", "p", tmp_path)
        rpc = node.rpc()
        rpc.createwallet("w")
        w = node.rpc("w")
        rpc.generatetoaddress(101, w.getnewaddress())
        txid = w.sendtoaddress(w.getnewaddress(), 1)
        deadline = time.monotonic() + 10
        while txid in rpc.getrawmempool() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert w.gettransaction(txid)["confirmations"] >= 1
    finally:
        server.stop()
