"""Conformance suite fixtures: one node per session (devnet in-process by default, a
real `bitcoind -regtest` when BITCOIND names one), a funded faucet wallet, and helpers.

The suite talks to the node only through chain.rpc.BitcoinRPC, so the same assertions
hold for devnet and for Bitcoin Core.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:          # the repo root, for `chain` and `devnet`
    sys.path.insert(0, str(ROOT))

from devnet.harness import start_node  # noqa: E402

FAUCET_BLOCKS = 110     # 10 mature coinbases of 50 BTC


@pytest.fixture(scope="session")
def node(tmp_path_factory):
    with start_node(tmp_path_factory.mktemp("node")) as n:
        yield n


@pytest.fixture(scope="session")
def rpc(node):
    return node.rpc()


@pytest.fixture(scope="session")
def faucet(node, rpc):
    rpc.createwallet("faucet")
    w = node.rpc("faucet")
    rpc.generatetoaddress(FAUCET_BLOCKS, w.getnewaddress())
    return w


@pytest.fixture(scope="session")
def mine(rpc, faucet):
    """mine(n=1) -> list of block hashes; rewards go to the faucet."""
    address = faucet.getnewaddress()

    def _mine(n: int = 1):
        hashes = rpc.generatetoaddress(n, address)
        rpc.syncwithvalidationinterfacequeue()
        return hashes
    return _mine
