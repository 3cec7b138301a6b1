"""The one wrapper around python-bitcoinrpc.

python-bitcoinrpc 1.0 keeps one HTTP connection per proxy forever, is not thread-safe and
its `batch_()` breaks against Bitcoin Core >= 28. So every call here builds a fresh
`AuthServiceProxy` (cheap), always with an explicit host:port and timeout, never batches,
and maps failures to `RPCError(code)` / `RPCUnavailable`. Call parameters are never
logged: they can carry wallet passphrases.
"""
from __future__ import annotations

import base64
import http.client
import json
import logging
import socket
from decimal import Decimal
from urllib.parse import quote, urlsplit, urlunsplit

from bitcoinrpc.authproxy import AuthServiceProxy, JSONRPCException

from chain.errors import TRANSIENT_CODES, RPCError, RPCUnavailable

# python-bitcoinrpc logs every call's parameters at DEBUG; keep that off for good.
logging.getLogger("BitcoinRPC").setLevel(logging.WARNING)

SATS_PER_BTC = 100_000_000
DEFAULT_TIMEOUT = 30.0  # seconds
# -342/-343 are python-bitcoinrpc's own codes for a non-JSON or empty HTTP answer
# (e.g. HTTP 401 on wrong credentials, 503 while warming up).
_TRANSPORT_CODES = {-342, -343}


def btc_to_sat(value) -> int:
    """Convert a BTC amount as bitcoind returns it (Decimal) to integer satoshis; exact."""
    sat = Decimal(str(value)) * SATS_PER_BTC
    if sat != sat.to_integral_value():
        raise ValueError("amount has sub-satoshi precision")
    return int(sat)


def sat_to_btc(sat: int) -> Decimal:
    """Convert integer satoshis to a Decimal BTC amount for bitcoind."""
    if not isinstance(sat, int) or isinstance(sat, bool):
        raise TypeError("satoshi amounts must be int")
    return Decimal(sat) / SATS_PER_BTC


class BitcoinRPC:
    """A JSON-RPC client for Bitcoin Core (or devnet).

    `url` is `http://host:port`; credentials are passed separately so they never appear in
    a logged URL. `wallet` selects `/wallet/<name>`. Thread-safe: no state is shared
    between calls.
    """

    def __init__(self, url: str, user: str = "", password: str = "", *,
                 timeout: float = DEFAULT_TIMEOUT, wallet: str | None = None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("bitcoind RPC URL must be http(s)://host:port")
        port = parts.port or 8332
        self._host = parts.hostname
        self._port = port
        self._scheme = parts.scheme
        self._user = user or (parts.username or "")
        self._password = password or (parts.password or "")
        self._timeout = float(timeout)
        self.wallet = wallet

    @property
    def endpoint(self) -> str:
        """host:port, safe to log (no credentials)."""
        return f"{self._host}:{self._port}"

    def for_wallet(self, wallet: str | None) -> "BitcoinRPC":
        """A client for the same node bound to another wallet (`None` → node calls)."""
        clone = object.__new__(BitcoinRPC)
        clone.__dict__.update(self.__dict__)
        clone.wallet = wallet
        return clone

    def with_timeout(self, timeout: float) -> "BitcoinRPC":
        """A client for the same node and wallet with another timeout (seconds)."""
        clone = self.for_wallet(self.wallet)
        clone._timeout = float(timeout)
        return clone

    def _service_url(self) -> str:
        netloc = f"{quote(self._user, safe='')}:{quote(self._password, safe='')}@{self._host}:{self._port}"
        path = f"/wallet/{quote(self.wallet, safe='')}" if self.wallet is not None else "/"
        return urlunsplit((self._scheme, netloc, path, "", ""))

    def call(self, method: str, *params):
        """Call `method` with positional params; return the decoded `result`.

        Raises RPCError(code, message) when the node answers with an error, and
        RPCUnavailable when it cannot be reached or answers with a non-JSON HTTP error.
        Amounts come back as Decimal.
        """
        proxy = AuthServiceProxy(self._service_url(), method, timeout=self._timeout)
        # python-bitcoinrpc builds Basic auth from the URL without percent-decoding it,
        # so credentials with @ : / + = % fail; set the header from the raw values.
        proxy._AuthServiceProxy__auth_header = b"Basic " + base64.b64encode(
            f"{self._user}:{self._password}".encode())
        try:
            return proxy(*params)
        except JSONRPCException as exc:
            err = exc.error if isinstance(exc.error, dict) else {}
            code = int(err.get("code", -1))
            message = str(err.get("message", ""))
            if code in _TRANSPORT_CODES or code in TRANSIENT_CODES:
                raise RPCUnavailable(f"bitcoind at {self.endpoint}: {message}") from None
            raise RPCError(code, message) from None
        except (OSError, socket.timeout, http.client.HTTPException) as exc:
            raise RPCUnavailable(f"bitcoind at {self.endpoint} unreachable: {type(exc).__name__}") from None
        except ValueError:
            raise RPCUnavailable(f"bitcoind at {self.endpoint} sent an unreadable answer") from None

    def batch(self, calls: list[tuple[str, list]]) -> list:
        """Send `calls` [(method, params)] as ONE JSON-RPC 2.0 batch request (Core and
        devnet both accept arrays). Returns, in order, each call's result or an
        RPCError instance for a call that failed (not raised). Raises RPCUnavailable
        when the node cannot be reached. Used for the mempool pass, never with
        parameters that could be secret."""
        if not calls:
            return []
        body = json.dumps([{"jsonrpc": "2.0", "id": n, "method": m, "params": list(p)}
                           for n, (m, p) in enumerate(calls)], default=str).encode()
        path = f"/wallet/{quote(self.wallet, safe='')}" if self.wallet is not None else "/"
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=self._timeout)
        auth = base64.b64encode(f"{self._user}:{self._password}".encode()).decode()
        try:
            conn.request("POST", path, body, {"Authorization": f"Basic {auth}", "Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise RPCUnavailable(f"bitcoind at {self.endpoint} answered HTTP {resp.status} to a batch")
            answers = json.loads(data, parse_float=Decimal)
        except (OSError, socket.timeout, http.client.HTTPException):
            raise RPCUnavailable(f"bitcoind at {self.endpoint} unreachable") from None
        except ValueError:
            raise RPCUnavailable(f"bitcoind at {self.endpoint} sent an unreadable answer") from None
        finally:
            conn.close()
        if not isinstance(answers, list):
            raise RPCUnavailable(f"bitcoind at {self.endpoint} did not answer the batch with an array")
        out: list = [RPCError(-32603, "no answer")] * len(calls)
        for a in answers:
            n = a.get("id")
            if not isinstance(n, int) or not 0 <= n < len(calls):
                continue
            err = a.get("error")
            if err:
                code = int(err.get("code", -1))
                if code in TRANSIENT_CODES:
                    raise RPCUnavailable(f"bitcoind at {self.endpoint}: {err.get('message', '')}")
                out[n] = RPCError(code, str(err.get("message", "")))
            else:
                out[n] = a.get("result")
        return out

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *params: self.call(name, *params)


def txid_of(raw_hex: str) -> str:
    """The txid (display hex) of a serialized transaction."""
    from embit.transaction import Transaction
    return Transaction.from_string(raw_hex).txid().hex()


def broadcast(node: BitcoinRPC, raw_hex: str) -> str:
    """Submit a signed transaction in ONE round trip: `sendrawtransaction`. Returns the txid.

    Core's sendrawtransaction runs the whole mempool acceptance itself (the same checks
    testmempoolaccept reports, plus its maxfeerate check, default 0.10 BTC/kvB), so a
    testmempoolaccept first is redundant: a refusal is `ChainRejected` with Core's code
    and reason (-26 policy/script, e.g. "insufficient fee" or
    "mandatory-script-verify-flag-failed (…)"; -25 "bad-txns-inputs-missingorspent" or a
    fee above maxfeerate). Idempotent: a transaction already in the mempool returns its
    txid (Core re-announces the mempool's copy, whatever witness this one carries, and
    skips the fee check), one already in the chain (-27) too. Core knows a confirmed
    transaction only by an unspent output of it: once every output is spent, re-sending
    it is -25 bad-txns-inputs-missingorspent, like a double spend (node/transaction.cpp
    BroadcastTransaction; tests/devnet/test_broadcast_adapter.py)."""
    from chain.errors import RPC_VERIFY_ALREADY_IN_CHAIN, ChainRejected
    try:
        return node.call("sendrawtransaction", raw_hex)
    except ChainRejected as err:
        if err.code == RPC_VERIFY_ALREADY_IN_CHAIN:
            return txid_of(raw_hex)
        raise
