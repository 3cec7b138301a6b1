"""Errors raised by the chain adapter (one root for the package)."""
from __future__ import annotations


class ChainError(Exception):
    """Root of every error the chain package raises."""


class RPCUnavailable(ChainError):
    """bitcoind could not be reached (connection refused, timeout, HTTP 401/5xx).

    Transient from the caller's point of view: retry later.
    """


class RPCError(ChainError):
    """bitcoind answered with a JSON-RPC error. `code` is Core's numeric RPC code."""

    def __init__(self, code: int, message: str):
        super().__init__(f"RPC error {code}: {message}")
        self.code = code
        self.message = message


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
RPC_METHOD_NOT_FOUND = -32601
RPC_WALLET_ERROR = -4
RPC_WALLET_INSUFFICIENT_FUNDS = -6
RPC_WALLET_NOT_FOUND = -18
RPC_WALLET_ALREADY_LOADED = -35
