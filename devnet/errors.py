"""devnet's one exception root, carrying Bitcoin Core's RPC error code.

Codes are Core's (src/rpc/protocol.h). Every failure a client can cause is raised as
`RPCFailure(code, message)` and serialized as a JSON-RPC error object; anything else that
escapes a handler is a devnet bug and is reported as -1 with the exception text.
"""
from __future__ import annotations

MISC_ERROR = -1
TYPE_ERROR = -3
WALLET_ERROR = -4
INVALID_ADDRESS_OR_KEY = -5
WALLET_INSUFFICIENT_FUNDS = -6
INVALID_PARAMETER = -8
DESERIALIZATION_ERROR = -22
VERIFY_ERROR = -25
VERIFY_REJECTED = -26
VERIFY_ALREADY_IN_CHAIN = -27
WALLET_NOT_FOUND = -18
WALLET_NOT_SPECIFIED = -19
WALLET_ALREADY_LOADED = -35
WALLET_ALREADY_EXISTS = -36
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
PARSE_ERROR = -32700


class RPCFailure(Exception):
    """An RPC answered with Core's error `code` and `message`."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class TxRejected(RPCFailure):
    """A transaction failed validation. `reason` is Core's reject reason
    (e.g. "bad-txns-inputs-missingorspent"); `message` may add details."""

    def __init__(self, code: int, reason: str, detail: str = ""):
        super().__init__(code, f"{reason}{', ' + detail if detail else ''}")
        self.reason = reason
