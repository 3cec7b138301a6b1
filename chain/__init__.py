"""The bitcoind JSON-RPC adapter and the chain watcher logic.

`chain.rpc.BitcoinRPC` is the only place in Custos that talks JSON-RPC to Bitcoin Core
(or to `devnet`, which answers the same protocol). Decimal BTC exists only here; the
rest of Custos uses integer satoshis.
"""
