"""One `make run`-style stack for the e2e tests that need it (gunicorn API, Celery worker
and beat, migrations, and devnet — or a real bitcoind when BITCOIND names one)."""
from __future__ import annotations

import os
from contextlib import ExitStack

import pytest

from tools.stack import Stack, embedded_env, free_port


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    var = tmp_path_factory.mktemp("stack-var")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "BROKER_URL", "BITCOIND_RPC_URL")}
    env = embedded_env(env, var)
    env.update(RECONCILE_INTERVAL="1", CHAIN_WATCH_INTERVAL="1",
               PRICE_FIXED="USD:60000,EUR:55000", PRICE_REFRESH_INTERVAL="5",   # as `PRICE_FIXED=… make run`
               # every e2e client registers from 127.0.0.1 on this one shared stack: the per-address
               # registration budget (10/minute; tests/api/test_devices.py) would refuse whichever test comes late
               RATELIMIT_REGISTER="1000/minute")
    with ExitStack() as cleanup:
        if os.environ.get("BITCOIND"):
            from devnet.harness import start_node
            node = cleanup.enter_context(start_node(var / "bitcoind"))
            env.update(BITCOIND_RPC_URL=node.url, BITCOIND_RPC_USER=node.user, BITCOIND_RPC_PASSWORD=node.password)
        s = cleanup.enter_context(Stack(env, "127.0.0.1", free_port(), workers=2, quiet=True, var=var))
        yield s


@pytest.fixture(scope="session")
def stack_rpc(stack):
    """A JSON-RPC client for the stack's node, and a funded faucet wallet on it."""
    from chain.rpc import BitcoinRPC
    env = stack.env
    node = BitcoinRPC(env["BITCOIND_RPC_URL"], env["BITCOIND_RPC_USER"], env["BITCOIND_RPC_PASSWORD"], timeout=60)
    node.call("createwallet", "e2e-faucet")
    faucet = node.for_wallet("e2e-faucet")
    node.call("generatetoaddress", 101, faucet.call("getnewaddress"))
    return node, faucet
