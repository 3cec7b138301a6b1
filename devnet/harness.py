"""Start a regtest node for tests: devnet in-process, or a real `bitcoind -regtest`
subprocess when the environment variable BITCOIND names its binary.

    with start_node(tmp_path) as node:
        node.rpc().getblockcount()
        node.rpc("faucet").getbalances()

Ports are chosen per run (`free_port`), readiness is awaited by polling RPC (never by
sleeping a fixed time), and `stop()` is idempotent.
"""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from pathlib import Path

from chain.errors import RPCError, RPCUnavailable
from chain.rpc import BitcoinRPC

READY_TIMEOUT = 60.0          # seconds to wait for RPC
FALLBACK_FEE_BTC_KVB = "0.0002"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """A running regtest node; `.url`, `.user`, `.password`, `.rpc(wallet)`, `.stop()`."""

    def __init__(self, url: str, user: str, password: str, datadir: Path, *, server=None, process=None,
                 zmq_url: str | None = None):
        self.url, self.user, self.password, self.datadir = url, user, password, datadir
        self.zmq_url = zmq_url            # where hashblock/sequence notifications are published
        self._server = server
        self._process = process
        self.is_bitcoind = process is not None

    def rpc(self, wallet: str | None = None, timeout: float = 60.0) -> BitcoinRPC:
        return BitcoinRPC(self.url, self.user, self.password, wallet=wallet, timeout=timeout)

    def stop(self) -> None:
        """Shut the node down cleanly (waits for the process). Idempotent."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._process is not None:
            try:
                self.rpc(timeout=10).stop()
            except (RPCError, RPCUnavailable):
                self._process.terminate()
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def __enter__(self) -> "Node":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for_rpc(node: Node, timeout: float = READY_TIMEOUT, process=None) -> None:
    """Poll getblockcount until the node answers (not warming up); raise on timeout
    or when the process exits."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            node.rpc(timeout=5).getblockcount()
            return
        except RPCUnavailable:
            pass
        except RPCError as exc:
            if exc.code != -28:
                raise
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"bitcoind exited with code {process.returncode} during startup")
        if time.monotonic() > deadline:
            raise TimeoutError(f"node at {node.url} not ready after {timeout}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def start_node(datadir: Path, *, fallbackfee: str = FALLBACK_FEE_BTC_KVB) -> Node:
    """Start a node with its state in `datadir` (created if missing) on a free port."""
    datadir = Path(datadir)
    datadir.mkdir(parents=True, exist_ok=True)
    user, password = "devnet", secrets.token_hex(16)
    binary = os.environ.get("BITCOIND")
    if binary:
        return _start_bitcoind(binary, datadir, user, password, fallbackfee)
    from decimal import Decimal
    from devnet.server import DevnetServer
    zmq_url = f"tcp://127.0.0.1:{free_port()}"
    server = DevnetServer(datadir, 0, user=user, password=password,
                          fallbackfee=int(Decimal(fallbackfee) * 100_000_000), zmqpub=zmq_url).start()
    node = Node(server.url, user, password, datadir, server=server, zmq_url=zmq_url)
    wait_for_rpc(node)
    return node


def _start_bitcoind(binary: str, datadir: Path, user: str, password: str, fallbackfee: str) -> Node:
    port = free_port()
    zmq_url = f"tcp://127.0.0.1:{free_port()}"
    args = [binary, "-regtest", f"-zmqpubhashblock={zmq_url}", f"-zmqpubsequence={zmq_url}", f"-datadir={datadir}", f"-rpcport={port}", f"-port={free_port()}",
            "-rpcbind=127.0.0.1", "-rpcallowip=127.0.0.1", f"-rpcuser={user}", f"-rpcpassword={password}",
            f"-fallbackfee={fallbackfee}", "-txindex=1", "-blockfilterindex=1", "-listen=0", "-server=1", "-printtoconsole=0",
            "-discover=0", "-dnsseed=0", "-fixedseeds=0", "-keypool=100", "-debug=0"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    node = Node(f"http://127.0.0.1:{port}", user, password, datadir, process=process, zmq_url=zmq_url)
    try:
        wait_for_rpc(node, process=process)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return node
