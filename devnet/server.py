"""HTTP + JSON-RPC front end: envelopes (1.0, 1.1, 2.0), batches, Basic auth,
`/wallet/<name>` paths, and method dispatch under the node lock.

Core's HTTP behaviour is matched: 401 with an empty body when unauthenticated; legacy
(1.0/1.1) errors with HTTP 404 (unknown method) / 500 (other errors) and a JSON body;
JSON-RPC 2.0 answers always 200 (204 for notifications). Content-Type is exactly
`application/json`.
"""
from __future__ import annotations

import base64
import hmac
import inspect
import json
import logging
import os
import secrets
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from devnet.encoding import dumps
from devnet.errors import (RPCFailure, INVALID_REQUEST, METHOD_NOT_FOUND, MISC_ERROR,
                           PARSE_ERROR, WALLET_NOT_FOUND, WALLET_NOT_SPECIFIED)
from devnet.node import Node

log = logging.getLogger("devnet")
COOKIE_USER = "__cookie__"


class Context:
    """What a handler sees: the node, the server and the wallet the URL selected."""

    def __init__(self, server: "DevnetServer", wallet_name: str | None):
        self.server = server
        self.node: Node = server.node
        self.wallet_name = wallet_name

    def wallet(self):
        node = self.node
        if self.wallet_name is not None:
            if self.wallet_name not in node.wallets:
                raise RPCFailure(WALLET_NOT_FOUND, "Requested wallet does not exist or is not loaded")
            return node.wallets[self.wallet_name]
        if len(node.wallets) == 1:
            return next(iter(node.wallets.values()))
        if not node.wallets:
            raise RPCFailure(WALLET_NOT_FOUND, "No wallet is loaded. Load a wallet using loadwallet or "
                             "create a new one with createwallet. (Note: A default wallet is no longer "
                             "automatically created)")
        raise RPCFailure(WALLET_NOT_SPECIFIED, "Wallet file not specified (must request wallet RPC "
                         "through /wallet/<filename> uri-path).")


def method_table() -> dict:
    from devnet import rpc_chain, rpc_mempool, rpc_node, rpc_psbt, rpc_wallet, rpc_wallet_tx
    table = {}
    for mod in (rpc_node, rpc_mempool, rpc_chain, rpc_wallet, rpc_wallet_tx, rpc_psbt):
        table.update(mod.METHODS)
    return table


def bind_params(fn, params):
    """Map positional (list) or named (dict) params onto `fn(ctx, ...)`; -1 with a usage
    line on a wrong count, like Core's help-text error, -8 for unknown named params."""
    sig = list(inspect.signature(fn).parameters.values())[1:]
    names = [p.name for p in sig]
    required = [p.name for p in sig if p.default is inspect.Parameter.empty]
    usage = f"{fn.__name__} " + " ".join(n if n in required else f"( {n} )" for n in names)
    if params is None:
        params = []
    if isinstance(params, dict):
        unknown = [k for k in params if k not in names]
        if unknown:
            raise RPCFailure(-8, f"Unknown named parameter {unknown[0]}")
        args = []
        for n in names:
            if n in params:
                args.append(params[n])
            elif n in required:
                raise RPCFailure(MISC_ERROR, usage)
            else:
                break
        return args
    if not isinstance(params, list):
        raise RPCFailure(INVALID_REQUEST, "Params must be an array or object")
    while params and params[-1] is None and len(params) > len(required):
        params = params[:-1]
    if len(params) < len(required) or len(params) > len(names):
        raise RPCFailure(MISC_ERROR, usage)
    return list(params)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30          # seconds an idle keep-alive connection may hold its thread
    server: "_HTTPServer"

    def log_message(self, fmt, *args):  # quiet: no per-request logging (params may be secret)
        pass

    def do_POST(self):
        srv = self.server.devnet
        if not srv.authorized(self.headers.get("Authorization", "")):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="jsonrpc"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = self.path.split("?")[0]
        wallet = None
        if path.startswith("/wallet/"):
            wallet = unquote(path[len("/wallet/"):])
        elif path not in ("/", ""):
            self._send(404, b"")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, payload = srv.handle_body(body, wallet)
        self._send(status, payload.encode() if payload is not None else b"", payload is not None)

    def do_GET(self):
        self._send(405, b"")

    def _send(self, status: int, data: bytes, is_json: bool = False):
        self.send_response(status)
        if is_json:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class DevnetServer:
    """A devnet node listening on 127.0.0.1:`port` (0 picks a free port).

    Credentials: `user`/`password` if given, else a cookie `__cookie__:<hex>` written to
    DATADIR/regtest/.cookie (removed on stop), like bitcoind.
    """

    def __init__(self, datadir: Path, port: int = 0, *, user: str | None = None,
                 password: str | None = None, fallbackfee: int | None = None,
                 automine: float | None = None, keypool: int | None = None, host: str = "127.0.0.1",
                 blockfilterindex: bool = True, zmqpub: str | None = None):
        """`zmqpub`: a ZMQ endpoint (tcp://127.0.0.1:N) to publish `hashblock` and
        `sequence` on, like bitcoind's -zmqpubhashblock/-zmqpubsequence."""
        kwargs = {"fallbackfee": fallbackfee, "blockfilterindex": blockfilterindex}
        if keypool is not None:
            kwargs["keypool"] = keypool
        self.node = Node(Path(datadir), **kwargs)
        self.methods = method_table()
        if zmqpub:
            from devnet.zmqpub import Publisher
            self.node.zmq = Publisher(zmqpub)
        self.cookie_path = None
        if user is None:
            user, password = COOKIE_USER, secrets.token_hex(32)
            self.cookie_path = self.node.netdir / ".cookie"
            fd = os.open(self.cookie_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"{user}:{password}")
        self.user, self.password = user, password or ""
        self._auth = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        self.httpd = _HTTPServer((host, port), _Handler)
        self.httpd.devnet = self
        self.port = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self.automine = automine
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()       # stop requested
        self._done = threading.Event()          # everything closed

    # ---- lifecycle --------------------------------------------------------------------
    def start(self) -> "DevnetServer":
        """Serve in background threads; returns once the socket accepts connections."""
        t = threading.Thread(target=self.httpd.serve_forever, name="devnet-http", daemon=True)
        t.start()
        self._threads.append(t)
        if self.automine:
            a = threading.Thread(target=self._automine_loop, name="devnet-automine", daemon=True)
            a.start()
            self._threads.append(a)
        return self

    def _automine_loop(self):
        burn = bytes.fromhex("0014" + "00" * 20)
        while not self.node.stopping.wait(self.automine):
            with self.node.lock:
                if self.node.mempool.entries:
                    self.node.mine(1, burn)

    def request_stop(self) -> None:
        """Stop from inside a request (`stop` RPC): shut down after the answer is sent."""
        threading.Thread(target=self.stop, name="devnet-stop", daemon=True).start()

    def stop(self) -> None:
        """Stop serving and close the store. Idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.node.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        with self.node.lock:
            self.node.store.close()
            if self.node.zmq is not None:
                self.node.zmq.close()
        if self.cookie_path and self.cookie_path.exists():
            self.cookie_path.unlink()
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once the server has fully stopped (store closed, cookie removed)."""
        return self._done.wait(timeout)

    # ---- requests ---------------------------------------------------------------------
    def authorized(self, header: str) -> bool:
        return hmac.compare_digest(header.encode(), self._auth.encode())

    def handle_body(self, body: bytes, wallet: str | None) -> tuple[int, str | None]:
        try:
            req = json.loads(body, parse_float=Decimal)
        except ValueError:
            return 500, dumps({"result": None, "error": {"code": PARSE_ERROR, "message": "Parse error"}, "id": None})
        if isinstance(req, list):
            if not req:
                return 200, dumps({"result": None, "error": {"code": INVALID_REQUEST,
                                                             "message": "Invalid Request object"}, "id": None})
            answers = [self.handle_one(r, wallet)[1] for r in req]
            return 200, dumps([a for a in answers if a is not None])
        status, answer = self.handle_one(req, wallet)
        return status, None if answer is None else dumps(answer)

    def handle_one(self, req, wallet: str | None) -> tuple[int, dict | None]:
        if not isinstance(req, dict):
            return 400, {"result": None, "error": {"code": INVALID_REQUEST, "message": "Invalid Request object"}, "id": None}
        v2 = req.get("jsonrpc") == "2.0"
        rid = req.get("id")
        try:
            method = req.get("method")
            if not isinstance(method, str):
                raise RPCFailure(INVALID_REQUEST, "Method must be a string")
            fn = self.methods.get(method)
            if fn is None:
                raise RPCFailure(METHOD_NOT_FOUND, "Method not found")
            args = bind_params(fn, req.get("params"))
            ctx = Context(self, wallet)
            with self.node.lock:
                result = fn(ctx, *args)
            if v2 and "id" not in req:
                return 204, None
            return 200, ({"jsonrpc": "2.0", "result": result, "id": rid} if v2
                         else {"result": result, "error": None, "id": rid})
        except RPCFailure as exc:
            err = {"code": exc.code, "message": exc.message}
        except Exception as exc:  # a devnet bug: report it, keep serving
            log.exception("devnet: internal error in %s", req.get("method"))
            err = {"code": MISC_ERROR, "message": f"devnet internal error: {type(exc).__name__}: {exc}"}
        if v2:
            return 200, {"jsonrpc": "2.0", "error": err, "id": rid}
        status = 404 if err["code"] == METHOD_NOT_FOUND else 400 if err["code"] == INVALID_REQUEST else 500
        return status, {"result": None, "error": err, "id": rid}
