"""Local HTTP servers that speak the price providers' real response formats (Spotbit,
CoinGecko, Coinbase) on a free port, for the tests: no test reaches the internet.

Each server holds `prices` {currency: Decimal text} and a `mode`: "ok", "down" (503),
"malformed" (valid JSON of the wrong shape), "garbage" (not JSON), "slow" (answers after
`delay` seconds). `history` {currency: {date: price}} backs the history endpoints.
`requests` records (path, query, headers) of every request.
"""
from __future__ import annotations

import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class ProviderServer:
    kind = "base"

    def __init__(self, prices: dict | None = None, *, timestamp: dt.datetime | None = None):
        self.prices = dict(prices or {})
        self.history: dict[str, dict[dt.date, str]] = {}
        self.timestamp = timestamp
        self.mode = "ok"
        self.delay = 0.0
        self.fail_first = 0           # answer 503 to this many requests, then normally
        self.requests: list[tuple[str, dict, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                server.requests.append((parts.path, query, {k.lower(): v for k, v in self.headers.items()}))
                status, body = server.answer(parts.path, query)
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *_args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{self.prefix}"

    prefix = ""

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()

    def stamp(self) -> dt.datetime:
        return self.timestamp or dt.datetime.now(dt.timezone.utc)

    def answer(self, path: str, query: dict):
        if self.mode == "slow":
            time.sleep(self.delay)
        if self.fail_first > 0:
            self.fail_first -= 1
            return 503, {"error": "busy"}
        if self.mode == "down":
            return 503, {"error": "down"}
        if self.mode == "garbage":
            return 200, b"<html>not json</html>"
        return self.route(path, query)

    def route(self, path: str, query: dict):
        raise NotImplementedError


class SpotbitServer(ProviderServer):
    """Spotbit (FastAPI): GET /api/now/{CURRENCY} → {"candle": {...}, "exchanges_used": [...]}."""
    kind = "spotbit"
    prefix = "/api"

    def route(self, path, query):
        cur = path.rsplit("/", 1)[-1]
        if not path.startswith("/api/now/") or cur not in self.prices:
            return 404, {"detail": "Not Found"}
        if self.mode == "malformed":
            return 200, {"candle": {"timestamp": self.stamp().isoformat(), "open": 1}}
        p = _num(self.prices[cur])
        candle = {"timestamp": self.stamp().replace(tzinfo=None).isoformat(), "open": p, "high": p, "low": p,
                  "close": p, "volume": _num("12.5")}
        return 200, _raw({"candle": candle, "exchanges_used": ["Bitstamp", "Kraken"], "failed_exchanges": []})


class CoinGeckoServer(ProviderServer):
    """CoinGecko v3: /simple/price and /coins/bitcoin/market_chart/range."""
    kind = "coingecko"
    prefix = "/api/v3"

    def route(self, path, query):
        if path == "/api/v3/simple/price":
            if self.mode == "malformed":
                return 200, {"ethereum": {"usd": 1}}
            wanted = query.get("vs_currencies", "").split(",")
            coin = {c.lower(): _num(self.prices[c.upper()]) for c in wanted if c.upper() in self.prices}
            if query.get("include_last_updated_at") == "true":
                coin["last_updated_at"] = int(self.stamp().timestamp())
            return 200, _raw({"bitcoin": coin})
        if path == "/api/v3/coins/bitcoin/market_chart/range":
            cur = query.get("vs_currency", "").upper()
            start, end = int(query["from"]), int(query["to"])
            points = []
            for day, price in sorted(self.history.get(cur, {}).items()):
                for hour, bump in ((0, "0.5"), (12, "0.25"), (23, "0")):   # the last point of the day counts
                    at = dt.datetime.combine(day, dt.time(hour), dt.timezone.utc)
                    if start <= at.timestamp() <= end:
                        value = price if bump == "0" else str(float(price) + float(bump))
                        points.append([int(at.timestamp() * 1000), _num(value)])
            return 200, _raw({"prices": points, "market_caps": [], "total_volumes": []})
        return 404, {"error": "coin not found"}


class CoinbaseServer(ProviderServer):
    """Coinbase v2: /v2/prices/BTC-{CUR}/spot[?date=YYYY-MM-DD]."""
    kind = "coinbase"

    def route(self, path, query):
        parts = path.split("/")
        if len(parts) != 5 or parts[1:3] != ["v2", "prices"] or parts[4] != "spot":
            return 404, {"errors": [{"id": "not_found", "message": "Not found"}]}
        base, _, cur = parts[3].partition("-")
        if self.mode == "malformed":
            return 200, {"data": {"base": "BTC", "currency": cur}}
        if "date" in query:
            price = self.history.get(cur, {}).get(dt.date.fromisoformat(query["date"]))
        else:
            price = self.prices.get(cur)
        if price is None:
            return 404, {"errors": [{"id": "not_found", "message": "Invalid currency"}]}
        return 200, {"data": {"amount": str(price), "base": base, "currency": cur}}


def _num(text):
    return _Raw(str(text))


class _Raw(str):
    """A number written into JSON exactly as given (no float rounding)."""


def _raw(doc) -> bytes:
    def enc(o):
        if isinstance(o, _Raw):
            return str(o)
        if isinstance(o, dict):
            return "{" + ", ".join(f"{json.dumps(k)}: {enc(v)}" for k, v in o.items()) + "}"
        if isinstance(o, list):
            return "[" + ", ".join(enc(v) for v in o) + "]"
        return json.dumps(o)
    return enc(doc).encode()
