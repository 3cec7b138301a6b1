"""devnet — a local regtest node that answers Bitcoin Core's JSON-RPC.

What belongs here: everything needed to stand in for `bitcoind -regtest` in development
and tests — the HTTP/JSON-RPC server (`server`), chain state and block building
(`chain`), SQLite persistence (`store`), mempool policy (`mempool`), consensus and
standardness checks with libbitcoinkernel script verification (`validation`), descriptor
wallets (`wallet`, `coinselect`, `descriptors`) and the RPC method tables (`rpc_node`, `rpc_mempool`,
`rpc_wallet`, `rpc_psbt`). `harness` starts a node (or a real bitcoind) for test suites.

It is a development and test stand-in, NOT a node for real money: it has no P2P
networking and only the regtest chain (reorgs come from invalidateblock / competing
blocks, see `reorg`). Nothing outside tests, benchmarks and
`make run` should import it; production code talks to any node through `chain.rpc`.
"""
