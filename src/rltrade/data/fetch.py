"""Historical OHLCV bars and trades from any ccxt exchange: paginated, rate-limited, retried, resumable.

Spot markets only. Every function takes a sync ccxt exchange from :func:`make_exchange` and a ccxt unified
symbol (``"ETH/USDT"``); times are µs since epoch UTC, ranges are half-open ``[start_us, end_us)``.

Pagination
    Bars: ask for ``page_limit`` bars from a cursor, move the cursor one bar past the newest bar received,
    stop at an empty page or when the cursor passes the range. Only *closed* bars are kept: a bar opened at
    ``t`` is returned when ``start_us <= t < end_us`` and ``t + tf <= now`` (the bar still forming is not).
    Trades: generic exchanges page by time (cursor = newest trade time, trades already seen at that
    millisecond are dropped; an empty page ends the download). On Binance, whose ``aggTrades`` only takes
    1 h time windows, the first aggregate trade at or after ``start`` is found by walking 1 h windows,
    then pages follow by id (``fromId = last + 1``): gapless and immune to many trades sharing one
    millisecond. Rows are marked ``is_agg`` when the exchange returned aggregated trades.
    Pages are handed out disjoint and in time order, so a caller may append each to the store as it comes
    (:func:`download`): a crash loses at most one page.

Rate limits and retries
    ccxt's own throttle spaces requests (``enableRateLimit``; ``rate_limit_ms`` sets its base interval).
    Errors ccxt classes as transient (``OperationFailed``: network errors, timeouts, 5xx → ``ExchangeNotAvailable``,
    418/429 → ``DDoSProtection``/``RateLimitExceeded``) are retried with exponential backoff, waiting at
    least the server's ``Retry-After`` on a rate limit; after ``RetryPolicy.max_retries`` a :class:`FetchError`
    names the endpoint and the number of tries. Anything else (bad symbol, bad parameter) fails at once.

Resume
    The store knows where a dataset ends (``Store.last_time``); pass it as ``resume_from_us`` and the
    download starts at :func:`resume_start_us` instead of ``start_us``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import ccxt
import polars as pl

from rltrade.data.schema import BAR_SCHEMA, TRADE_SCHEMA
from rltrade.types import US_PER_HOUR, Kind, Timeframe

_US_PER_MS: Final = 1_000
_HOUR_MS: Final = US_PER_HOUR // _US_PER_MS
_BINANCE_IDS: Final = frozenset({"binance", "binanceus"})
_BINANCE_MAX_LIMIT: Final = 1000
# ccxt's taxonomy: OperationFailed and its subclasses (NetworkError, RequestTimeout, ExchangeNotAvailable,
# DDoSProtection, RateLimitExceeded) mean "retrying may help"; ExchangeError means "the request is wrong".
_TRANSIENT: Final = (ccxt.OperationFailed, ccxt.NetworkError)
_RATE_LIMITED: Final = (ccxt.RateLimitExceeded, ccxt.DDoSProtection)

T = TypeVar("T")


class FetchError(RuntimeError):
    """A download failed; the message says what was asked, what went wrong and what to do."""


@dataclass(frozen=True)
class RetryPolicy:
    """How transient errors are retried: waits ``backoff_s * 2**attempt`` capped at ``max_backoff_s``."""

    max_retries: int = 5
    """Retries after the first try (so ``max_retries + 1`` tries in all)."""
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    """Injectable so tests can record the waits instead of sleeping."""

    def __post_init__(self) -> None:
        """Check that retries and back-off bounds are non-negative and ordered."""
        if self.max_retries < 0 or self.backoff_s < 0 or self.max_backoff_s < self.backoff_s:
            raise ValueError(
                f"RetryPolicy needs max_retries >= 0 and 0 <= backoff_s <= max_backoff_s; got "
                f"max_retries={self.max_retries}, backoff_s={self.backoff_s}, max_backoff_s={self.max_backoff_s}"
            )

    def delay_s(self, attempt: int) -> float:
        """Wait before retry number ``attempt + 1`` (``attempt`` counts failures so far, from 0)."""
        return float(min(self.max_backoff_s, self.backoff_s * 2**attempt))


@dataclass(frozen=True)
class DownloadProgress:
    """Reported after every page."""

    pages: int
    rows: int
    retries: int
    last_us: int
    """Time of the newest row so far (bar open or trade time)."""
    covered_us: int
    """Everything before this time has been handed out (the newest bar's close; just after a trade)."""
    start_us: int
    end_us: int

    @property
    def fraction(self) -> float:
        """Share of ``[start_us, end_us)`` covered so far, in [0, 1]."""
        span = max(1, self.end_us - self.start_us)
        return min(1.0, max(0.0, (self.covered_us - self.start_us) / span))


@dataclass(frozen=True)
class DownloadSummary:
    """What one :func:`download` did."""

    pages: int
    rows: int
    retries: int
    first_us: int | None
    last_us: int | None
    """Newest row handed out; compare with ``end_us`` to see whether the range was fully covered."""
    start_us: int
    """Effective start (after resume)."""
    end_us: int


# ------------------------------------------------------------------------------------------ exchange


def make_exchange(
    exchange_id: str,
    *,
    api_urls: Mapping[str, str] | None = None,
    rate_limit_ms: int | None = None,
    timeout_ms: int = 10_000,
) -> Any:
    """Create a sync ccxt exchange set up for public spot market data.

    ``api_urls`` replaces entries of ``exchange.urls['api']`` (tests point them at a local server); an
    unknown key is an error, so a typo cannot silently send requests to the real exchange.
    ``rate_limit_ms`` sets ccxt's throttle interval (None keeps the exchange's published limit).
    On Binance only spot markets are loaded and no private endpoint (currencies, margin pairs) is called.
    """
    if exchange_id not in ccxt.exchanges:
        raise FetchError(f"unknown ccxt exchange id {exchange_id!r}; use one of ccxt.exchanges, e.g. 'binance'")
    if rate_limit_ms is not None and rate_limit_ms < 1:
        raise ValueError(f"rate_limit_ms must be >= 1 ms, got {rate_limit_ms}")
    options: dict[str, Any] = {"defaultType": "spot", "maxRetriesOnFailure": 0}  # we retry, with backoff
    if exchange_id in _BINANCE_IDS:
        options |= {
            "fetchMarkets": {"types": ["spot"], "loadAllOptions": False},
            "fetchCurrencies": False,
            "fetchMargins": False,
        }
    config: dict[str, Any] = {"enableRateLimit": True, "timeout": timeout_ms, "options": options}
    if rate_limit_ms is not None:
        config["rateLimit"] = rate_limit_ms
    exchange = getattr(ccxt, exchange_id)(config)
    if api_urls:
        urls = exchange.urls.get("api")
        if not isinstance(urls, dict):
            raise FetchError(f"{exchange_id}: urls['api'] is {type(urls).__name__}, cannot override keys")
        unknown = sorted(set(api_urls) - set(urls))
        if unknown:
            raise FetchError(f"{exchange_id}: unknown urls['api'] key(s) {unknown}; known: {sorted(urls)}")
        urls.update(api_urls)
    return exchange


def resume_start_us(kind: Kind, start_us: int, last_stored_us: int | None, tf: Timeframe | None = None) -> int:
    """Where a download of ``[start_us, ...)`` starts when the store already ends at ``last_stored_us``.

    Bars: one bar after the last stored open. Trades: *at* the last stored trade time, because the trades
    of that millisecond may have been split across pages; the store's append drops the repeats by
    ``trade_id``.
    """
    if last_stored_us is None:
        return start_us
    if kind is Kind.BARS:
        if tf is None:
            raise ValueError("resume_start_us: bars need a timeframe")
        return max(start_us, last_stored_us + tf.us)
    return max(start_us, last_stored_us)


# -------------------------------------------------------------------------------------------- calls


def _iso(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def _ceil_ms(us: int) -> int:
    return -(-us // _US_PER_MS)


def _retry_after_s(exchange: Any) -> float:
    """Read the ``Retry-After`` of the last response in seconds (0 when absent or an HTTP date)."""
    headers = getattr(exchange, "last_response_headers", None) or {}
    try:
        return max(0.0, float(headers.get("Retry-After", 0)))
    except (TypeError, ValueError):
        return 0.0


class _Caller:
    """Runs ccxt calls with the retry policy and counts the retries."""

    def __init__(self, exchange: Any, retry: RetryPolicy) -> None:
        self.exchange = exchange
        self.retry = retry
        self.retries = 0

    def __call__(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        for attempt in itertools.count():
            try:
                return fn(*args)
            except _TRANSIENT as err:
                if attempt >= self.retry.max_retries:
                    url = getattr(self.exchange, "last_request_url", None) or "?"
                    tries = f"{attempt + 1} tries" if attempt else "1 try"
                    raise FetchError(
                        f"{self.exchange.id}: {what} failed after {tries}, last at {url} "
                        f"({type(err).__name__}: {err}). The exchange is down or limiting this IP: wait and "
                        "run again (pages already handed out are kept and the download resumes after them), "
                        "or allow more retries / a longer backoff (RetryPolicy)."
                    ) from err
                delay = self.retry.delay_s(attempt)
                if isinstance(err, _RATE_LIMITED):
                    delay = max(delay, _retry_after_s(self.exchange))
                self.retries += 1
                self.retry.sleep(delay)
            except ccxt.BaseError as err:
                raise FetchError(
                    f"{self.exchange.id}: {what} was refused ({type(err).__name__}: {err}); not a transient "
                    "error, so not retried: check the symbol, timeframe and time range."
                ) from err
        raise AssertionError("unreachable")  # itertools.count() never ends


def _spot_market(call: _Caller, symbol: str) -> dict[str, Any]:
    exchange = call.exchange
    call("load markets", exchange.load_markets)
    market = exchange.markets.get(symbol)
    if market is None:
        spot = sorted(s for s, m in exchange.markets.items() if m.get("spot"))
        raise FetchError(
            f"{exchange.id} has no spot market {symbol!r} (rltrade downloads spot markets only); "
            f"use a unified spot symbol like {spot[:3]}"
        )
    if not market.get("spot"):
        raise FetchError(f"{symbol!r} on {exchange.id} is a {market.get('type')} market; rltrade downloads spot only")
    return dict(market)


# --------------------------------------------------------------------------------------------- bars

_KLINE_FIELDS: Final = ("open", "high", "low", "close", "volume")


def _binance_klines_frame(rows: list[list[Any]]) -> pl.DataFrame:
    """Binance's 12-field klines → BAR_SCHEMA, keeping what ccxt's unified OHLCV drops."""
    cols = list(zip(*rows, strict=True)) if rows else [()] * 12

    def num(i: int) -> pl.Series:
        return pl.Series([str(v) for v in cols[i]], dtype=pl.Utf8).cast(pl.Float64)

    trade_count = pl.Series(cols[8], dtype=pl.Int64)
    return pl.DataFrame(
        {
            "open_us": pl.Series(cols[0], dtype=pl.Int64) * _US_PER_MS,
            **{name: num(i) for i, name in enumerate(_KLINE_FIELDS, start=1)},
            "quote_volume": num(7),
            "trade_count": trade_count,
            "taker_buy_volume": num(9),
            "is_filled": trade_count == 0,
        },
        schema=BAR_SCHEMA,
    )


def _unified_ohlcv_frame(rows: list[list[Any]]) -> pl.DataFrame:
    """Convert ccxt unified ``[ms, o, h, l, c, v]`` rows → BAR_SCHEMA (extras null)."""
    cols = list(zip(*rows, strict=True)) if rows else [()] * 6
    volume = pl.Series(cols[5], dtype=pl.Float64)
    frame = pl.DataFrame(
        {
            "open_us": pl.Series(cols[0], dtype=pl.Int64) * _US_PER_MS,
            **{name: pl.Series(cols[i], dtype=pl.Float64) for i, name in enumerate(_KLINE_FIELDS, start=1)},
        }
    )
    return frame.with_columns(
        pl.lit(None, dtype=pl.Float64).alias("quote_volume"),
        pl.lit(None, dtype=pl.Int64).alias("trade_count"),
        pl.lit(None, dtype=pl.Float64).alias("taker_buy_volume"),
        (volume == 0).fill_null(False).alias("is_filled"),
    ).select(list(BAR_SCHEMA))


def _ohlcv_pages(
    call: _Caller,
    market: dict[str, Any],
    tf: Timeframe,
    start_us: int,
    end_us: int,
    *,
    page_limit: int,
    now_us: int,
    native: bool,
) -> Iterator[pl.DataFrame]:
    exchange, symbol = call.exchange, market["symbol"]
    if tf.value not in (exchange.timeframes or {}):
        raise FetchError(f"{exchange.id} has no {tf.value} candles; it offers {sorted(exchange.timeframes or {})}")
    last_open_us = min(end_us - 1, now_us - tf.us)  # newest open that is inside the range and closed
    use_binance = native and exchange.id in _BINANCE_IDS
    cursor_ms = _ceil_ms(start_us)
    while cursor_ms * _US_PER_MS <= last_open_us:
        what = f"{tf.value} candles of {symbol} from {_iso(cursor_ms * _US_PER_MS)}"
        if use_binance:
            request = {
                "symbol": market["id"],
                "interval": tf.value,
                "startTime": cursor_ms,
                "endTime": last_open_us // _US_PER_MS,
                "limit": min(page_limit, _BINANCE_MAX_LIMIT),
            }
            page = _binance_klines_frame(call(what, exchange.publicGetKlines, request))
        else:
            page = _unified_ohlcv_frame(call(what, exchange.fetch_ohlcv, symbol, tf.value, cursor_ms, page_limit))
        if page.height == 0:
            return
        page = page.sort("open_us")
        newest_us = int(page.item(-1, "open_us"))
        if newest_us < cursor_ms * _US_PER_MS:
            raise FetchError(
                f"{exchange.id}: asked for {what} but got only older candles (newest {_iso(newest_us)}); "
                "the exchange ignores 'since' for this market, so it cannot be paginated"
            )
        fresh = page.filter((pl.col("open_us") >= cursor_ms * _US_PER_MS) & (pl.col("open_us") <= last_open_us)).unique(
            "open_us", keep="first", maintain_order=True
        )
        if fresh.height:
            yield fresh
        cursor_ms = (newest_us + tf.us) // _US_PER_MS


# ------------------------------------------------------------------------------------------- trades


def _trades_frame(exchange_id: str, trades: list[dict[str, Any]]) -> pl.DataFrame:
    """Convert ccxt unified trades to TRADE_SCHEMA; side is the taker's (+1 buy, -1 sell)."""
    sides = {"buy": 1, "sell": -1}
    for t in trades:
        if t.get("side") not in sides:
            raise FetchError(f"{exchange_id}: trade {t.get('id')} has no taker side ({t.get('side')!r})")
        missing = [k for k in ("timestamp", "price", "amount") if t.get(k) is None]
        if missing:
            raise FetchError(f"{exchange_id}: trade {t.get('id')} lacks {missing}; raw record: {t.get('info')}")
    try:
        ids = [int(t["id"]) for t in trades]
    except (TypeError, ValueError) as err:
        raise FetchError(f"{exchange_id}: trade ids must be integers for the trade store ({err})") from None
    return pl.DataFrame(
        {
            "ts_us": [int(t["timestamp"]) * _US_PER_MS for t in trades],
            "trade_id": ids,
            "price": [t["price"] for t in trades],
            "qty": [t["amount"] for t in trades],
            "side": [sides[t["side"]] for t in trades],
            # Binance aggTrades records carry the aggregate id under "a".
            "is_agg": [isinstance(t.get("info"), dict) and "a" in t["info"] for t in trades],
        },
        schema=TRADE_SCHEMA,
    ).sort("trade_id")


def _binance_trade_pages(
    call: _Caller, market: dict[str, Any], start_us: int, end_us: int, limit: int
) -> Iterator[pl.DataFrame]:
    exchange, symbol = call.exchange, market["symbol"]
    end_ms = _ceil_ms(end_us)  # trades with ms < end_ms are inside [start_us, end_us)
    in_range = (pl.col("ts_us") >= start_us) & (pl.col("ts_us") < end_us)
    window_ms = _ceil_ms(start_us)
    trades: list[dict[str, Any]] = []
    # Anchor: walk 1 h windows (the longest Binance accepts) until one holds a trade. Binance answers a
    # window with its earliest trades, ascending, so the first page starts at the first trade >= start.
    while not trades and window_ms < end_ms:
        until_ms = min(window_ms + _HOUR_MS, end_ms) - 1
        what = f"aggTrades of {symbol} in [{_iso(window_ms * _US_PER_MS)}, {_iso(until_ms * _US_PER_MS)}]"
        trades = call(what, exchange.fetch_trades, symbol, window_ms, limit, {"until": until_ms})
        window_ms += _HOUR_MS
    while trades:
        page = _trades_frame(exchange.id, trades)
        fresh = page.filter(in_range)
        if fresh.height:
            yield fresh
        if int(page.select(pl.col("ts_us").max()).item()) >= end_us:
            return
        from_id = int(page.item(-1, "trade_id")) + 1
        what = f"aggTrades of {symbol} from id {from_id}"
        trades = call(what, exchange.fetch_trades, symbol, None, limit, {"fromId": from_id})


def _generic_trade_pages(
    call: _Caller, market: dict[str, Any], start_us: int, end_us: int, limit: int
) -> Iterator[pl.DataFrame]:
    exchange, symbol = call.exchange, market["symbol"]
    cursor_ms, end_ms = _ceil_ms(start_us), _ceil_ms(end_us)
    seen_at_cursor: set[int] = set()
    while cursor_ms < end_ms:
        what = f"trades of {symbol} from {_iso(cursor_ms * _US_PER_MS)}"
        trades = call(what, exchange.fetch_trades, symbol, cursor_ms, limit)
        if not trades:
            return
        page = _trades_frame(exchange.id, trades).unique("trade_id", keep="first").sort("ts_us", "trade_id")
        page = page.filter(~pl.col("trade_id").is_in(list(seen_at_cursor)))
        newest_ms = int(page.item(-1, "ts_us")) // _US_PER_MS if page.height else -1
        if newest_ms < cursor_ms:
            if len(trades) >= limit:
                raise FetchError(
                    f"{exchange.id}: more than {limit} trades of {symbol} at {_iso(cursor_ms * _US_PER_MS)}; "
                    "time-based pagination cannot pass them: raise page_limit"
                )
            return
        fresh = page.filter((pl.col("ts_us") >= start_us) & (pl.col("ts_us") < end_us))
        if fresh.height:
            yield fresh
        if newest_ms >= end_ms:
            return
        at_newest = page.filter(pl.col("ts_us") // _US_PER_MS == newest_ms).get_column("trade_id").to_list()
        seen_at_cursor = (seen_at_cursor if newest_ms == cursor_ms else set()) | set(at_newest)
        cursor_ms = newest_ms


# ----------------------------------------------------------------------------------------- download


def download(
    exchange: Any,
    symbol: str,
    kind: Kind,
    tf: Timeframe | None,
    start_us: int,
    end_us: int,
    *,
    on_page: Callable[[pl.DataFrame], object],
    resume_from_us: int | None = None,
    progress: Callable[[DownloadProgress], object] | None = None,
    page_limit: int = 1000,
    retry: RetryPolicy = RetryPolicy(),
    now_us: int | None = None,
    native: bool = True,
) -> DownloadSummary:
    """Download ``kind`` of ``symbol`` in ``[start_us, end_us)``, handing each page to ``on_page``.

    Pages are non-empty, time-ordered and disjoint (BAR_SCHEMA for bars, TRADE_SCHEMA for trades).
    ``resume_from_us`` is the store's last time for this dataset (see :func:`resume_start_us`).
    ``now_us`` (default: the local clock) decides which bars are closed. ``native`` uses rltrade's
    exchange-specific pagers where it has one (Binance: raw klines with quote volume, trade count and
    taker-buy volume; aggTrades by id); False forces ccxt's unified calls (on Binance, ccxt then asks
    for trades in 1 h windows, so time paging stops at the first hour without a trade).
    """
    if end_us <= start_us:
        raise ValueError(f"empty range: start {_iso(start_us)} is not before end {_iso(end_us)}")
    if page_limit < 1:
        raise ValueError(f"page_limit must be >= 1, got {page_limit}")
    if (kind is Kind.BARS) != (tf is not None):
        raise ValueError("bars need a timeframe and trades must not have one")
    begin_us = resume_start_us(kind, start_us, resume_from_us, tf)
    call = _Caller(exchange, retry)
    pages = rows = 0
    first_us: int | None = None
    last_us: int | None = None
    if begin_us < end_us:
        market = _spot_market(call, symbol)
        if tf is not None:
            now = exchange.milliseconds() * _US_PER_MS if now_us is None else now_us
            source = _ohlcv_pages(call, market, tf, begin_us, end_us, page_limit=page_limit, now_us=now, native=native)
            time_col = "open_us"
        else:
            pager = _binance_trade_pages if native and exchange.id in _BINANCE_IDS else _generic_trade_pages
            source = pager(call, market, begin_us, end_us, page_limit)
            time_col = "ts_us"
        for page in source:
            on_page(page)
            pages, rows = pages + 1, rows + page.height
            first_us = int(page.item(0, time_col)) if first_us is None else first_us
            last_us = int(page.item(-1, time_col))
            if progress is not None:
                covered_us = last_us + (tf.us if tf is not None else 1)
                progress(DownloadProgress(pages, rows, call.retries, last_us, covered_us, begin_us, end_us))
    return DownloadSummary(pages, rows, call.retries, first_us, last_us, begin_us, end_us)


def fetch_ohlcv(
    exchange: Any,
    symbol: str,
    tf: Timeframe,
    start_us: int,
    end_us: int,
    *,
    resume_from_us: int | None = None,
    progress: Callable[[DownloadProgress], object] | None = None,
    page_limit: int = 1000,
    retry: RetryPolicy = RetryPolicy(),
    now_us: int | None = None,
    native: bool = True,
) -> pl.DataFrame:
    """Download the closed ``tf`` bars of ``symbol`` opened in ``[start_us, end_us)`` (see :func:`download`).

    Returns one frame in BAR_SCHEMA.
    """
    pages: list[pl.DataFrame] = []
    download(
        exchange,
        symbol,
        Kind.BARS,
        tf,
        start_us,
        end_us,
        on_page=pages.append,
        resume_from_us=resume_from_us,
        progress=progress,
        page_limit=page_limit,
        retry=retry,
        now_us=now_us,
        native=native,
    )
    return pl.concat(pages) if pages else pl.DataFrame(schema=BAR_SCHEMA)


def fetch_trades(
    exchange: Any,
    symbol: str,
    start_us: int,
    end_us: int,
    *,
    resume_from_us: int | None = None,
    progress: Callable[[DownloadProgress], object] | None = None,
    page_limit: int = 1000,
    retry: RetryPolicy = RetryPolicy(),
    native: bool = True,
) -> pl.DataFrame:
    """Trades of ``symbol`` with time in ``[start_us, end_us)``, in TRADE_SCHEMA (see :func:`download`)."""
    pages: list[pl.DataFrame] = []
    download(
        exchange,
        symbol,
        Kind.TRADES,
        None,
        start_us,
        end_us,
        on_page=pages.append,
        resume_from_us=resume_from_us,
        progress=progress,
        page_limit=page_limit,
        retry=retry,
        native=native,
    )
    return pl.concat(pages) if pages else pl.DataFrame(schema=TRADE_SCHEMA)
