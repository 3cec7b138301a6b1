"""ZMQ wakes the block follower: a stack whose beat would run a pass only every
10 minutes still shows a payment within seconds, because devnet publishes
hashblock/sequence (like bitcoind -zmqpub*) and beat's ZMQ thread enqueues a pass.
Once the listener's notifications continue a snapshot (chain.feed), later payments are
seen from the feed alone: the cursor's snapshot time stays put.
(Under BITCOIND=..., the node is started with the same ZMQ flags.)"""
from __future__ import annotations

import os
from contextlib import ExitStack
from decimal import Decimal

from tests.e2e.test_accounts_e2e import cli, wait_until
from tools.stack import Stack, embedded_env, free_port


def test_zmq_notifications_wake_the_follower(tmp_path_factory, tmp_path):
    var = tmp_path_factory.mktemp("stack-zmq")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "BROKER_URL", "BITCOIND_RPC_URL", "BITCOIND_ZMQ_URL")}
    env = embedded_env(env, var)
    env.update(RECONCILE_INTERVAL="1", CHAIN_WATCH_INTERVAL="600")
    with ExitStack() as cleanup:
        if os.environ.get("BITCOIND"):
            from devnet.harness import start_node
            node = cleanup.enter_context(start_node(var / "bitcoind"))
            env.update(BITCOIND_RPC_URL=node.url, BITCOIND_RPC_USER=node.user, BITCOIND_RPC_PASSWORD=node.password,
                       BITCOIND_ZMQ_URL=node.zmq_url)
        stack = cleanup.enter_context(Stack(env, "127.0.0.1", free_port(), workers=1, quiet=True, var=var))
        from chain.rpc import BitcoinRPC
        e = stack.env
        rpc = BitcoinRPC(e["BITCOIND_RPC_URL"], e["BITCOIND_RPC_USER"], e["BITCOIND_RPC_PASSWORD"], timeout=60)
        rpc.call("createwallet", "zmq-faucet")
        faucet = rpc.for_wallet("zmq-faucet")
        rpc.call("generatetoaddress", 101, faucet.call("getnewaddress"))
        state = tmp_path / "phone.json"
        cli(stack, state, "register")
        aid = cli(stack, state, "account", "create", "--name", "zmq")["account_id"]
        address = cli(stack, state, "account", "receive", aid)["address"]
        faucet.call("sendtoaddress", address, Decimal("0.2"))
        pending = wait_until(lambda: (b := cli(stack, state, "account", "balance", aid))["untrusted_pending"] and b,
                             timeout=30, what="the mempool payment, seen after a ZMQ wake-up")
        assert pending["untrusted_pending"] == 20_000_000
        rpc.call("generatetoaddress", 1, faucet.call("getnewaddress"))
        confirmed = wait_until(lambda: (b := cli(stack, state, "account", "balance", aid))["confirmed"] and b,
                               timeout=30, what="the confirmation, seen after a ZMQ wake-up")
        assert confirmed["confirmed"] == 20_000_000
        cursor = wait_until(lambda: (c := _cursor(e["DATABASE_URL"])) and c[0] and c, timeout=30,
                            what="the follower's cursor handed to beat's listener")
        faucet.call("sendtoaddress", address, Decimal("0.1"))
        wait_until(lambda: cli(stack, state, "account", "balance", aid)["untrusted_pending"] == 10_000_000,
                   timeout=30, what="the second payment, seen from the feed")
        assert _cursor(e["DATABASE_URL"]) == cursor              # no snapshot was needed


def _cursor(url):
    from chain.model import MempoolCursor
    from store.session import session_scope
    with session_scope(url) as s:
        c = s.get(MempoolCursor, 1)
        return (c.listener, c.mempool_seq, c.synced_at) if c else None
