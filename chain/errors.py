"""Errors raised by the chain adapter (one root for the package)."""
from __future__ import annotations


class ChainError(Exception):
    """Root of every error the chain package raises."""


class ChainUnavailable(ChainError):
    """bitcoind could not be reached (connection refused, timeout, HTTP 401/5xx) or is
    still warming up. Transient: retry later."""


class ChainRejected(ChainError):
    """bitcoind answered with a permanent JSON-RPC error. `code` is Core's numeric RPC
    code, `message` Core's reason (e.g. "insufficient fee")."""

    def __init__(self, code: int, message: str):
        super().__init__(f"RPC error {code}: {message}")
        self.code = code
        self.message = message


# The names the adapter started with; devnet and its tests use them.
RPCUnavailable = ChainUnavailable
RPCError = ChainRejected


# Bitcoin Core RPC error codes (src/rpc/protocol.h) that callers branch on.
RPC_MISC_ERROR = -1
RPC_TYPE_ERROR = -3
RPC_INVALID_ADDRESS_OR_KEY = -5
RPC_INVALID_PARAMETER = -8
RPC_DESERIALIZATION_ERROR = -22
RPC_VERIFY_ERROR = -25
RPC_VERIFY_REJECTED = -26
RPC_VERIFY_ALREADY_IN_CHAIN = -27
RPC_IN_WARMUP = -28
RPC_CLIENT_NOT_CONNECTED = -9
RPC_CLIENT_IN_INITIAL_DOWNLOAD = -10
TRANSIENT_CODES = {RPC_IN_WARMUP, RPC_CLIENT_NOT_CONNECTED, RPC_CLIENT_IN_INITIAL_DOWNLOAD}
RPC_METHOD_NOT_FOUND = -32601
RPC_WALLET_ERROR = -4
RPC_WALLET_INSUFFICIENT_FUNDS = -6
RPC_WALLET_NOT_FOUND = -18
RPC_WALLET_ALREADY_LOADED = -35
