"""A local fake of Binance's spot REST API, for testing the real ccxt client without the internet.

:class:`FakeBinance` is a threaded HTTP server bound to ``127.0.0.1`` on a free port. It answers the
public spot endpoints ccxt's ``binance`` class uses for market data, with Binance's own parameter rules:

===========================  ============================================================================
path                         behaviour
===========================  ============================================================================
``/api/v3/ping``             ``{}``
``/api/v3/time``             ``{"serverTime": now_ms}``
``/api/v3/exchangeInfo``     spot ETHUSDT and BTCUSDT with realistic filters (ccxt's load_markets parses it)
``/api/v3/klines``           ``symbol, interval, startTime, endTime, limit`` (default 500, max 1000): bars
                             with ``startTime <= open <= endTime`` and ``open <= now``; the first ``limit``
                             when ``startTime`` is given, else the last ``limit``. 12-field rows, decimals as
                             strings. The bar holding ``now`` is served although still open, as Binance does.
``/api/v3/aggTrades``        ``symbol, fromId, startTime, endTime, limit``: ``fromId`` with a time window is
                             an error (-1128), a window longer than 1 h is an error (-1127); trades at or
                             after ``fromId`` / inside the window, ascending, first ``limit``; neither: the
                             last ``limit``. Only trades with ``T <= now``.
anything else                404 (futures ``/fapi``, ``/dapi``, ``/sapi``... are not served)
===========================  ============================================================================

Data is explicit and deterministic: :func:`make_klines` and :func:`make_agg_trades` build seeded series, and
the tests compare what ccxt reassembles against exactly those rows.

Faults are scripted per path: :meth:`FakeBinance.inject` queues :class:`Fault` answers (a 429 with
``Retry-After``, a 503, an empty page...) that replace the next requests to that path, in order. Every
request, faulted or not, is logged (:attr:`FakeBinance.requests`) for assertions on what the client asked.

:func:`guard_local_only` mounts a requests adapter on a ccxt exchange's session that refuses, and records,
any URL whose host is not ``127.0.0.1``: a test can then assert that nothing tried to reach the internet.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import requests
from requests.adapters import HTTPAdapter

HOUR_MS = 3_600_000
DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
INTERVAL_MS: Mapping[str, int] = {"1s": 1_000, "1m": 60_000, "1h": HOUR_MS, "1d": 24 * HOUR_MS}
SYMBOLS: Mapping[str, tuple[str, str, str, str]] = {
    # symbol: (base, quote, tickSize, stepSize)
    "ETHUSDT": ("ETH", "USDT", "0.01000000", "0.00010000"),
    "BTCUSDT": ("BTC", "USDT", "0.01000000", "0.00001000"),
}

# ---------------------------------------------------------------------------------------------- data


def make_klines(
    interval: str,
    start_ms: int,
    n: int,
    *,
    seed: int,
    base_price: float = 2000.0,
    drop: Sequence[int] = (),
    quiet_every: int = 7,
) -> list[list[Any]]:
    """``n`` consecutive Binance kline rows from ``start_ms`` (a seeded random walk), minus ``drop``.

    Every ``quiet_every``-th bar has no trade (zero volume, OHLC = previous close), as Binance serves
    such bars. ``drop`` lists bar indices left out, like an exchange outage. Decimals are strings with
    Binance's 8 decimals; prices are rounded to the 0.01 tick, so ``float(s)`` is what ccxt reads.
    """
    step = INTERVAL_MS[interval]
    rng = np.random.default_rng(seed)
    close_N = np.round(base_price * np.exp(np.cumsum(rng.normal(0.0, 2e-3, n))), 2)
    wick_N = np.round(np.abs(rng.normal(0.0, 1e-3, n)) * base_price, 2)
    volume_N = np.round(rng.gamma(2.0, 3.0, n), 4)
    count_N = rng.integers(1, 60, n)
    taker_N = np.round(volume_N * rng.uniform(0.0, 1.0, n), 4)
    dropped = set(drop)
    rows: list[list[Any]] = []
    prev_close = float(close_N[0])
    for i in range(n):
        open_ms = start_ms + i * step
        quiet = quiet_every > 0 and i % quiet_every == quiet_every - 1
        if quiet:
            o = h = lo = c = prev_close
            vol, count, taker = 0.0, 0, 0.0
        else:
            o, c = prev_close, float(close_N[i])
            h, lo = max(o, c) + float(wick_N[i]), min(o, c) - float(wick_N[i])
            vol, count, taker = float(volume_N[i]), int(count_N[i]), float(taker_N[i])
        prev_close = c
        if i in dropped:
            continue
        mid = (h + lo) / 2
        rows.append(
            [
                open_ms,
                f"{o:.8f}",
                f"{h:.8f}",
                f"{lo:.8f}",
                f"{c:.8f}",
                f"{vol:.8f}",
                open_ms + step - 1,
                f"{vol * mid:.8f}",
                count,
                f"{taker:.8f}",
                f"{taker * mid:.8f}",
                "0",
            ]
        )
    return rows


def make_agg_trades(
    start_ms: int,
    n: int,
    *,
    seed: int,
    first_id: int = 1_000,
    base_price: float = 2000.0,
    max_gap_ms: int = 400,
) -> list[dict[str, Any]]:
    """``n`` Binance aggTrade records from ``start_ms``, ids ``first_id, first_id + 1, ...``.

    Gaps between trades are uniform in ``[0, max_gap_ms]`` ms, so some trades share a millisecond (the
    case that breaks pagination by time alone). ``m`` (buyer is maker) is random: about half sells.
    """
    rng = np.random.default_rng(seed)
    time_N = start_ms + np.cumsum(rng.integers(0, max_gap_ms + 1, n))
    price_N = np.round(base_price * np.exp(np.cumsum(rng.normal(0.0, 2e-4, n))), 2)
    qty_N = np.round(rng.pareto(2.0, n) * 0.05 + 0.0001, 4)
    maker_N = rng.random(n) < 0.5
    span_N = rng.integers(0, 3, n)
    trades: list[dict[str, Any]] = []
    raw_id = 50 * first_id
    for i in range(n):
        trades.append(
            {
                "a": first_id + i,
                "p": f"{price_N[i]:.8f}",
                "q": f"{qty_N[i]:.8f}",
                "f": raw_id,
                "l": raw_id + int(span_N[i]),
                "T": int(time_N[i]),
                "m": bool(maker_N[i]),
                "M": True,
            }
        )
        raw_id += int(span_N[i]) + 1
    return trades


# -------------------------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class Fault:
    """One scripted answer that replaces the next request to a path."""

    status: int
    body: str
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


def rate_limited(retry_after_s: int = 1) -> Fault:
    """Binance's answer when the IP's request weight is exhausted (HTTP 429, code -1003)."""
    body = {"code": -1003, "msg": "Too many requests; current limit of IP(127.0.0.1) is 6000 per minute."}
    return Fault(429, json.dumps(body), {"Retry-After": str(retry_after_s)})


def server_error(status: int = 503) -> Fault:
    """A bare gateway/server error page (what a load balancer in front of Binance sends)."""
    return Fault(status, "Service Unavailable", content_type="text/plain")


def empty_page() -> Fault:
    """A valid, empty JSON list."""
    return Fault(200, "[]")


@dataclass(frozen=True)
class LoggedRequest:
    """One request the server received, with the status it answered."""

    path: str
    params: Mapping[str, str]
    status: int
    items: int | None
    """Length of the JSON list answered (None when the answer is not a list)."""


# -------------------------------------------------------------------------------------------- server


def _error(code: int, msg: str, status: int = 400) -> tuple[int, str]:
    return status, json.dumps({"code": code, "msg": msg})


def _symbol_info(symbol: str) -> dict[str, Any]:
    base, quote, tick, step = SYMBOLS[symbol]
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000", "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000.00000000", "stepSize": step},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "1500.0", "stepSize": "0.0"},
            {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000},
            {
                "filterType": "PERCENT_PRICE_BY_SIDE",
                "bidMultiplierUp": "5",
                "bidMultiplierDown": "0.2",
                "askMultiplierUp": "5",
                "askMultiplierDown": "0.2",
                "avgPriceMins": 5,
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


class FakeBinance:
    """A Binance spot REST look-alike on ``127.0.0.1``; use as a context manager.

    ``klines`` maps ``(symbol, interval)`` to rows from :func:`make_klines`; ``agg_trades`` maps a symbol
    to records from :func:`make_agg_trades`. ``now_ms`` is the server clock: nothing later is served.
    """

    def __init__(
        self,
        *,
        now_ms: int,
        klines: Mapping[tuple[str, str], list[list[Any]]] | None = None,
        agg_trades: Mapping[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.now_ms = now_ms
        self._klines = {k: sorted(v, key=lambda r: int(r[0])) for k, v in (klines or {}).items()}
        self._trades = {k: sorted(v, key=lambda t: int(t["a"])) for k, v in (agg_trades or {}).items()}
        self._lock = threading.Lock()
        self._faults: dict[str, deque[Fault | None]] = {}
        self._log: list[LoggedRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------- lifecycle
    def __enter__(self) -> FakeBinance:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                split = urllib.parse.urlsplit(self.path)
                params = dict(urllib.parse.parse_qsl(split.query))
                status, body, headers, ctype = fake._answer(split.path, params)
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # quiet: the request log is ours
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the server first (use it as a context manager)"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def api_urls(self) -> dict[str, str]:
        """Every entry of ccxt binance's ``urls['api']`` re-pointed here (same paths, local host)."""
        return binance_api_urls(self.base_url)

    # ----------------------------------------------------------------------- scripting & log
    def inject(self, path: str, *faults: Fault, after: int = 0) -> None:
        """Let ``after`` requests to ``path`` through, then answer the next ones with ``faults``, in order."""
        with self._lock:
            self._faults.setdefault(path, deque()).extend([None] * after + list(faults))

    def pending_faults(self, path: str) -> int:
        """Scripted answers not consumed yet (pass-throughs included)."""
        with self._lock:
            return len(self._faults.get(path, ()))

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def requests_to(self, path: str) -> list[LoggedRequest]:
        return [r for r in self.requests if r.path == path]

    # ----------------------------------------------------------------------- routing
    def _answer(self, path: str, params: dict[str, str]) -> tuple[int, str, Mapping[str, str], str]:
        with self._lock:
            queue = self._faults.get(path)
            fault = queue.popleft() if queue else None
        if fault is not None:
            status, body, headers, ctype = fault.status, fault.body, fault.headers, fault.content_type
        else:
            status, body = self._route(path, params)
            headers, ctype = {}, "application/json"
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        items = len(decoded) if isinstance(decoded, list) else None
        with self._lock:
            self._log.append(LoggedRequest(path, params, status, items))
        return status, body, headers, ctype

    def _route(self, path: str, params: dict[str, str]) -> tuple[int, str]:
        if path == "/api/v3/ping":
            return 200, "{}"
        if path == "/api/v3/time":
            return 200, json.dumps({"serverTime": self.now_ms})
        if path == "/api/v3/exchangeInfo":
            return 200, json.dumps(self._exchange_info())
        if path == "/api/v3/klines":
            return self._klines_answer(params)
        if path == "/api/v3/aggTrades":
            return self._agg_trades_answer(params)
        return _error(-1, f"no such endpoint on the fake: {path}", status=404)

    def _exchange_info(self) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms,
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [_symbol_info(s) for s in SYMBOLS],
        }

    @staticmethod
    def _limit(params: Mapping[str, str]) -> int | None:
        limit = int(params.get("limit", DEFAULT_LIMIT))
        return limit if 1 <= limit <= MAX_LIMIT else None

    def _klines_answer(self, params: dict[str, str]) -> tuple[int, str]:
        symbol, interval = params.get("symbol"), params.get("interval")
        if symbol not in SYMBOLS:
            return _error(-1121, "Invalid symbol.")
        if interval not in INTERVAL_MS:
            return _error(-1120, "Invalid interval.")
        limit = self._limit(params)
        if limit is None:
            return _error(-1130, "Invalid data sent for a parameter.")
        rows = [r for r in self._klines.get((symbol, interval), []) if int(r[0]) <= self.now_ms]
        if "startTime" in params:
            rows = [r for r in rows if int(r[0]) >= int(params["startTime"])]
        if "endTime" in params:
            rows = [r for r in rows if int(r[0]) <= int(params["endTime"])]
        rows = rows[:limit] if "startTime" in params else rows[-limit:]
        return 200, json.dumps(rows)

    def _agg_trades_answer(self, params: dict[str, str]) -> tuple[int, str]:
        symbol = params.get("symbol")
        if symbol not in SYMBOLS:
            return _error(-1121, "Invalid symbol.")
        limit = self._limit(params)
        if limit is None:
            return _error(-1130, "Invalid data sent for a parameter.")
        has_window = "startTime" in params or "endTime" in params
        if "fromId" in params and has_window:
            return _error(-1128, "Combination of optional parameters invalid.")
        window_ms = int(params.get("endTime", 0)) - int(params.get("startTime", 0))
        if "startTime" in params and "endTime" in params and window_ms > HOUR_MS:
            return _error(-1127, "More than 1 hours between startTime and endTime.")
        trades = [t for t in self._trades.get(symbol, []) if int(t["T"]) <= self.now_ms]
        if "fromId" in params:
            trades = [t for t in trades if int(t["a"]) >= int(params["fromId"])][:limit]
        elif has_window:
            lo, hi = int(params.get("startTime", 0)), int(params.get("endTime", self.now_ms))
            trades = [t for t in trades if lo <= int(t["T"]) <= hi][:limit]
        else:
            trades = trades[-limit:]
        return 200, json.dumps(trades)


def binance_api_urls(base_url: str) -> dict[str, str]:
    """Map every ``urls['api']`` key of ccxt's binance to ``base_url`` + the same path."""
    import ccxt  # local: only the tests that use the fake need ccxt

    urls = ccxt.binance().urls["api"]
    return {key: base_url + urllib.parse.urlsplit(url).path for key, url in urls.items()}


# ---------------------------------------------------------------------------------------- host guard


class _LocalOnlyAdapter(HTTPAdapter):
    """Sends requests to 127.0.0.1 only; records every URL and refuses (and records) any other host."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []
        self.sent_at: list[float] = []
        """``time.monotonic()`` of each sent request."""
        self.refused: list[str] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        if urllib.parse.urlsplit(url).hostname != "127.0.0.1":
            self.refused.append(url)
            raise requests.ConnectionError(f"test guard: refused non-local URL {url}")
        self.sent.append(url)
        self.sent_at.append(time.monotonic())
        return super().send(request, *args, **kwargs)


@contextmanager
def guard_local_only(exchange: Any) -> Iterator[_LocalOnlyAdapter]:
    """Within the block, ``exchange`` (a sync ccxt exchange) can reach 127.0.0.1 only.

    Yields the adapter: ``.sent`` lists URLs sent, ``.refused`` URLs refused (a test asserts it empty).
    """
    adapter = _LocalOnlyAdapter()
    exchange.session.mount("http://", adapter)
    exchange.session.mount("https://", adapter)
    try:
        yield adapter
    finally:
        adapter.close()
