"""The chain: the bitcoind JSON-RPC adapter and the chain index.

`chain.rpc.BitcoinRPC` is the only place in Custos that talks JSON-RPC to Bitcoin Core
(or to `devnet`, which answers the same protocol). Decimal BTC exists only there; the
rest of Custos uses integer satoshis. The chain index (`model`, `scripts`, `apply`,
`follower`, `mempool`, `restore`, `coins`) owns every account's scripts, coins and
transactions; see chain/README.md for the interface other packages use.
"""
