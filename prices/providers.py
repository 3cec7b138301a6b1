"""Price providers behind one small interface.

    provider.spot(currencies, now) -> list[Quote]          # current price per currency
    provider.history(currency, days) -> {date: Decimal}    # daily prices (history-capable ones)

Each adapter speaks one public API shape and accepts any server that speaks it (a
self-hosted Spotbit, CoinGecko or its Pro host, Coinbase, or a test server):

- `SpotbitProvider`: `GET {base}/now/{CURRENCY}`; understands current Spotbit
  (`{"candle": {"timestamp", "close", …}, "exchanges_used": […]}`) and the older row form
  (`{"currency_pair": "BTC-USD", "timestamp": <ms>, "close": …}`).
- `CoinGeckoProvider`: `GET {base}/simple/price?ids=bitcoin&vs_currencies=usd,eur&
  include_last_updated_at=true`; history from `/coins/bitcoin/market_chart/range`
  (the last point of each UTC day is that day's price).
- `CoinbaseProvider`: `GET {base}/v2/prices/BTC-{CURRENCY}/spot`
  (`{"data": {"amount": "…", "base": "BTC", "currency": "USD"}}`, no timestamp: the
  answer is as of the request); history per day with `?date=YYYY-MM-DD`, at most
  `MAX_DAYS_PER_CALL` days per call.
- `FixedProvider`: `PRICE_FIXED=USD:60000,EUR:55000`, for development and tests.

Failure: `spot()` returns the quotes it could get and logs the currencies it could not;
it raises ProviderError only when it got nothing. A malformed answer is a ProviderError
naming the provider and what was wrong, never a crash and never a price.
"""
from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from prices.errors import ProviderError
from prices.http import HttpJson
from prices.money import parse_price
from prices.validate import Quote

log = logging.getLogger(__name__)
UTC = dt.timezone.utc
MAX_DAYS_PER_CALL = 31


class PriceProvider:
    """The interface. `name` identifies the provider in stored sources and logs."""
    name = "provider"
    supports_history = False

    def spot(self, currencies, now: dt.datetime) -> list[Quote]:
        raise NotImplementedError

    def history(self, currency: str, days) -> dict[dt.date, Decimal]:
        raise ProviderError(f"{self.name} has no price history")

    # shared helpers --------------------------------------------------------------------
    def _each(self, currencies, fetch) -> list[Quote]:
        quotes, errors = [], []
        for cur in currencies:
            try:
                quotes.append(fetch(cur))
            except ProviderError as err:
                errors.append(err)
                log.warning("price provider %s: %s %s", self.name, cur, err)
        if not quotes and errors:
            raise errors[0]
        return quotes

    def _price(self, value, what: str) -> Decimal:
        try:
            return parse_price(value)
        except ValueError as err:
            raise ProviderError(f"{self.name}: malformed {what}: {err}") from None


def _timestamp(value, now: dt.datetime) -> dt.datetime:
    """Seconds or milliseconds since the epoch, or an ISO 8601 string (naive = UTC)."""
    if isinstance(value, bool) or value is None:
        raise ValueError("no timestamp")
    if isinstance(value, (int, Decimal)):
        seconds = Decimal(value)
        if seconds > Decimal("1e11"):
            seconds /= 1000
        return dt.datetime.fromtimestamp(float(seconds), UTC)
    if isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError("no timestamp")


class SpotbitProvider(PriceProvider):
    name = "spotbit"

    def __init__(self, base_url: str, http: HttpJson, name: str | None = None):
        self.base, self.http = base_url.rstrip("/"), http
        self.name = name or self.name

    def spot(self, currencies, now):
        return self._each(currencies, lambda cur: self._one(cur, now))

    def _one(self, cur: str, now: dt.datetime) -> Quote:
        doc = self.http.get(f"{self.base}/now/{cur}", name=self.name)
        if not isinstance(doc, dict):
            raise ProviderError(f"{self.name}: expected an object for {cur}")
        row = doc.get("candle") if isinstance(doc.get("candle"), dict) else doc
        pair = row.get("currency_pair") or doc.get("currency_pair")
        if pair is not None and str(pair).upper().replace("/", "-") not in (f"BTC-{cur}", f"XBT-{cur}"):
            raise ProviderError(f"{self.name}: answered {pair!r} for BTC-{cur}")
        if "close" not in row:
            raise ProviderError(f"{self.name}: no close price for {cur}")
        try:
            as_of = _timestamp(row.get("timestamp"), now)
        except (ValueError, OverflowError, OSError):
            raise ProviderError(f"{self.name}: malformed timestamp for {cur}") from None
        return Quote(self.name, cur, self._price(row["close"], f"close for {cur}"), as_of)


class CoinGeckoProvider(PriceProvider):
    name = "coingecko"
    supports_history = True

    def __init__(self, base_url: str, http: HttpJson, api_key: str | None = None, name: str | None = None):
        self.base, self.http = base_url.rstrip("/"), http
        self.name = name or self.name
        self._headers = {}
        if api_key:
            header = "x-cg-pro-api-key" if "pro-api." in self.base else "x-cg-demo-api-key"
            self._headers[header] = api_key

    def spot(self, currencies, now):
        currencies = list(currencies)
        doc = self.http.get(f"{self.base}/simple/price", {
            "ids": "bitcoin", "vs_currencies": ",".join(c.lower() for c in currencies),
            "include_last_updated_at": "true", "precision": "full"}, self._headers, name=self.name)
        coin = doc.get("bitcoin") if isinstance(doc, dict) else None
        if not isinstance(coin, dict):
            raise ProviderError(f"{self.name}: no \"bitcoin\" object in the answer")
        try:
            as_of = _timestamp(coin["last_updated_at"], now) if "last_updated_at" in coin else now
        except (ValueError, OverflowError, OSError):
            raise ProviderError(f"{self.name}: malformed last_updated_at") from None

        def one(cur):
            if cur.lower() not in coin:
                raise ProviderError(f"{self.name}: no {cur} price in the answer")
            return Quote(self.name, cur, self._price(coin[cur.lower()], f"{cur} price"), as_of)
        return self._each(currencies, one)

    def history(self, currency, days):
        days = sorted(set(days))
        if not days:
            return {}
        start = dt.datetime.combine(days[0], dt.time(), UTC)
        end = dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time(), UTC)
        doc = self.http.get(f"{self.base}/coins/bitcoin/market_chart/range", {
            "vs_currency": currency.lower(), "from": int(start.timestamp()), "to": int(end.timestamp()),
            "precision": "full"}, self._headers, name=self.name)
        points = doc.get("prices") if isinstance(doc, dict) else None
        if not isinstance(points, list):
            raise ProviderError(f"{self.name}: no \"prices\" list in the history answer")
        wanted, last = set(days), {}
        for point in points:
            if not (isinstance(point, list) and len(point) == 2):
                raise ProviderError(f"{self.name}: malformed history point")
            try:
                at = _timestamp(point[0], start)
            except (ValueError, OverflowError, OSError):
                raise ProviderError(f"{self.name}: malformed history timestamp") from None
            if at.date() in wanted and (at.date() not in last or at >= last[at.date()][0]):
                last[at.date()] = (at, self._price(point[1], "history price"))
        return {day: price for day, (_, price) in last.items()}


class CoinbaseProvider(PriceProvider):
    name = "coinbase"
    supports_history = True

    def __init__(self, base_url: str, http: HttpJson, name: str | None = None):
        self.base, self.http = base_url.rstrip("/"), http
        self.name = name or self.name

    def _get(self, cur: str, params=None) -> Decimal:
        doc = self.http.get(f"{self.base}/v2/prices/BTC-{cur}/spot", params, name=self.name)
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, dict) or "amount" not in data:
            raise ProviderError(f"{self.name}: no data.amount for BTC-{cur}")
        if str(data.get("base", "BTC")).upper() != "BTC" or str(data.get("currency", cur)).upper() != cur:
            raise ProviderError(f"{self.name}: answered {data.get('base')}-{data.get('currency')} for BTC-{cur}")
        return self._price(data["amount"], f"amount for {cur}")

    def spot(self, currencies, now):
        return self._each(currencies, lambda cur: Quote(self.name, cur, self._get(cur), now))

    def history(self, currency, days):
        out = {}
        for day in sorted(set(days))[-MAX_DAYS_PER_CALL:]:
            out[day] = self._get(currency, {"date": day.isoformat()})
        return out


class FixedProvider(PriceProvider):
    """Constant prices (development): every answer is as of `now`."""
    name = "fixed"
    supports_history = True

    def __init__(self, prices: dict[str, Decimal]):
        self.prices = dict(prices)

    def spot(self, currencies, now):
        return [Quote(self.name, c, self.prices[c], now) for c in currencies if c in self.prices]

    def history(self, currency, days):
        return {d: self.prices[currency] for d in days} if currency in self.prices else {}



KINDS = {"spotbit": SpotbitProvider, "coingecko": CoinGeckoProvider, "coinbase": CoinbaseProvider}
