"""ccxt downloads against a local fake Binance: the real ccxt client, no internet.

Every test talks to :class:`FakeBinance` on 127.0.0.1 through ``make_exchange``; a guard on the client's
HTTP session refuses any other host, and the fixture checks at teardown that nothing was refused and that
the server saw every request the client sent.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from rltrade.data.fetch import (
    DownloadProgress,
    FetchError,
    RetryPolicy,
    download,
    fetch_ohlcv,
    fetch_trades,
    make_exchange,
    resume_start_us,
)
from rltrade.data.schema import BAR_SCHEMA, TRADE_SCHEMA
from rltrade.data.store import DatasetKey, Store
from rltrade.types import US_PER_MINUTE, Kind, Timeframe
from tests.support.fake_binance import (
    HOUR_MS,
    FakeBinance,
    Fault,
    empty_page,
    guard_local_only,
    make_agg_trades,
    make_klines,
    rate_limited,
    server_error,
)

T0_MS = 1_723_075_200_000  # 2024-08-08 00:00 UTC
T0_US = T0_MS * 1000
N_BARS = 350
DROPPED = (123,)  # one missing minute, like an exchange outage
TRADES_START_MS = T0_MS + 3 * HOUR_MS  # three quiet hours before the first trade
KLINES = "/api/v3/klines"
AGG = "/api/v3/aggTrades"


# ------------------------------------------------------------------------------------------- oracles


def bars_oracle(rows: list[list[Any]]) -> pl.DataFrame:
    """Binance kline rows → BAR_SCHEMA, one row at a time (test oracle)."""
    out = [
        {
            "open_us": int(r[0]) * 1000,
            "open": float(r[1]),
            "high": float(r[2]),
            "low": float(r[3]),
            "close": float(r[4]),
            "volume": float(r[5]),
            "quote_volume": float(r[7]),
            "trade_count": int(r[8]),
            "taker_buy_volume": float(r[9]),
            "is_filled": int(r[8]) == 0,
        }
        for r in rows
    ]
    return pl.DataFrame(out, schema=BAR_SCHEMA)


def trades_oracle(records: list[dict[str, Any]]) -> pl.DataFrame:
    """aggTrade records → TRADE_SCHEMA; ``m`` (buyer is maker) means the taker sold."""
    out = [
        {
            "ts_us": int(t["T"]) * 1000,
            "trade_id": int(t["a"]),
            "price": float(t["p"]),
            "qty": float(t["q"]),
            "side": -1 if t["m"] else 1,
            "is_agg": True,
        }
        for t in records
    ]
    return pl.DataFrame(out, schema=TRADE_SCHEMA)


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def klines() -> list[list[Any]]:
    return make_klines("1m", T0_MS, N_BARS, seed=11, drop=DROPPED)


@pytest.fixture(scope="module")
def agg_trades() -> list[dict[str, Any]]:
    return make_agg_trades(TRADES_START_MS, 2_600, seed=12)


@pytest.fixture
def fake(klines: list[list[Any]], agg_trades: list[dict[str, Any]]) -> Iterator[FakeBinance]:
    with FakeBinance(
        now_ms=T0_MS + 24 * HOUR_MS, klines={("ETHUSDT", "1m"): klines}, agg_trades={"ETHUSDT": agg_trades}
    ) as server:
        yield server


@contextmanager
def connected(server: FakeBinance, rate_limit_ms: int = 1) -> Iterator[Any]:
    """A ccxt binance client pointed at ``server``, that can reach nothing else."""
    ex = make_exchange("binance", api_urls=server.api_urls(), rate_limit_ms=rate_limit_ms)
    with guard_local_only(ex) as guard:
        yield ex
    assert guard.refused == [], "ccxt tried to reach a host other than 127.0.0.1"
    assert len(guard.sent) == len(server.requests), "the client sent requests the fake never saw"


@pytest.fixture
def exchange(fake: FakeBinance) -> Iterator[Any]:
    with connected(fake) as ex:
        yield ex


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def retry(waits: list[float]) -> RetryPolicy:
    return RetryPolicy(max_retries=5, backoff_s=0.5, max_backoff_s=30.0, sleep=waits.append)


def minute(i: int) -> int:
    return T0_US + i * US_PER_MINUTE


def start_times(fake: FakeBinance, path: str) -> list[int]:
    return [int(r.params["startTime"]) for r in fake.requests_to(path) if "startTime" in r.params]


# --------------------------------------------------------------------------------------------- bars


def test_klines_pages_reassemble_exactly(fake: FakeBinance, exchange: Any, klines: list[list[Any]]) -> None:
    bars = fetch_ohlcv(exchange, "ETH/USDT", Timeframe.M1, T0_US, minute(N_BARS), page_limit=100)

    assert_frame_equal(bars, bars_oracle(klines))
    assert bars.get_column("is_filled").any(), "the series should hold quiet (no-trade) minutes"
    # 349 bars in pages of 100: four requests, each starting one minute after the previous page's last bar.
    assert fake.requests_to(KLINES)[-1].items == 49
    assert start_times(fake, KLINES) == [T0_MS, *(int(klines[i][0]) + 60_000 for i in (99, 199, 299))]
    assert len(fake.requests_to("/api/v3/exchangeInfo")) == 1


def test_unified_ohlcv_path_gives_the_same_bars_without_extras(exchange: Any, klines: list[list[Any]]) -> None:
    bars = fetch_ohlcv(exchange, "ETH/USDT", Timeframe.M1, T0_US, minute(N_BARS), page_limit=100, native=False)

    expected = bars_oracle(klines).with_columns(
        pl.lit(None, dtype=pl.Float64).alias("quote_volume"),
        pl.lit(None, dtype=pl.Int64).alias("trade_count"),
        pl.lit(None, dtype=pl.Float64).alias("taker_buy_volume"),
    )
    assert_frame_equal(bars, expected)


@pytest.mark.parametrize("native", [True, False])
def test_only_closed_bars_inside_the_range_are_kept(klines: list[list[Any]], native: bool) -> None:
    now_ms = T0_MS + 100 * 60_000 + 30_000  # half-way through bar 100
    with FakeBinance(now_ms=now_ms, klines={("ETHUSDT", "1m"): klines}) as server, connected(server) as ex:
        bars = fetch_ohlcv(
            ex, "ETH/USDT", Timeframe.M1, minute(10), minute(10_000), now_us=now_ms * 1000, native=native
        )
    assert bars.item(0, "open_us") == minute(10)
    assert bars.item(-1, "open_us") == minute(99), "bar 100 is still forming at now and must be left out"
    assert_frame_equal(bars.select("open_us", "close"), bars_oracle(klines[10:100]).select("open_us", "close"))


def test_resume_fetches_only_the_rest(fake: FakeBinance, exchange: Any, klines: list[list[Any]]) -> None:
    last_stored = minute(199)
    bars = fetch_ohlcv(
        exchange, "ETH/USDT", Timeframe.M1, T0_US, minute(N_BARS), resume_from_us=last_stored, page_limit=100
    )

    assert_frame_equal(bars, bars_oracle(klines).filter(pl.col("open_us") > last_stored))
    assert start_times(fake, KLINES) == [minute(200) // 1000, minute(300) // 1000]


def test_crash_mid_download_then_resume_from_the_store(
    tmp_path: Path, fake: FakeBinance, exchange: Any, klines: list[list[Any]]
) -> None:
    store = Store(tmp_path / "store")
    key = DatasetKey("binance", "ETHUSDT", Kind.BARS, Timeframe.M1)
    fake.inject(KLINES, *[server_error(503)] * 3, after=2)  # the exchange goes down after two pages

    with pytest.raises(FetchError):
        download(
            exchange,
            "ETH/USDT",
            Kind.BARS,
            Timeframe.M1,
            T0_US,
            minute(N_BARS),
            on_page=lambda page: store.append(key, page),
            page_limit=100,
            retry=RetryPolicy(max_retries=2, sleep=lambda _: None),
        )
    assert store.last_time(key) == int(klines[199][0]) * 1000, "both pages before the outage are kept"

    seen = len(fake.requests_to(KLINES))
    summary = download(
        exchange,
        "ETH/USDT",
        Kind.BARS,
        Timeframe.M1,
        T0_US,
        minute(N_BARS),
        on_page=lambda page: store.append(key, page),
        resume_from_us=store.last_time(key),
        page_limit=100,
    )
    assert summary.start_us == int(klines[200][0]) * 1000
    resumed = [int(r.params["startTime"]) for r in fake.requests_to(KLINES)[seen:]]
    assert resumed == [summary.start_us // 1000, summary.start_us // 1000 + 100 * 60_000]
    assert_frame_equal(store.read(key), bars_oracle(klines))


def test_empty_page_ends_pagination(fake: FakeBinance, exchange: Any, klines: list[list[Any]]) -> None:
    fake.inject(KLINES, empty_page(), after=1)
    summary = download(
        exchange,
        "ETH/USDT",
        Kind.BARS,
        Timeframe.M1,
        T0_US,
        minute(N_BARS),
        on_page=lambda _: None,
        page_limit=100,
    )
    assert (summary.pages, summary.rows) == (1, 100)
    assert summary.last_us == int(klines[99][0]) * 1000
    assert [r.items for r in fake.requests_to(KLINES)] == [100, 0]


def test_rate_limit_429_is_retried_after_retry_after(
    fake: FakeBinance, exchange: Any, klines: list[list[Any]], retry: RetryPolicy, waits: list[float]
) -> None:
    fake.inject(KLINES, rate_limited(retry_after_s=7), after=1)
    pages: list[pl.DataFrame] = []
    summary = download(
        exchange,
        "ETH/USDT",
        Kind.BARS,
        Timeframe.M1,
        T0_US,
        minute(N_BARS),
        on_page=pages.append,
        page_limit=100,
        retry=retry,
    )
    assert summary.retries == 1
    assert waits == [7.0], "the server's Retry-After (7 s) beats the 0.5 s backoff"
    assert [r.status for r in fake.requests_to(KLINES)] == [200, 429, 200, 200, 200]
    assert_frame_equal(pl.concat(pages), bars_oracle(klines))


def test_server_errors_are_retried_with_exponential_backoff(
    fake: FakeBinance, exchange: Any, klines: list[list[Any]], retry: RetryPolicy, waits: list[float]
) -> None:
    fake.inject(KLINES, server_error(503), server_error(502))
    bars = fetch_ohlcv(exchange, "ETH/USDT", Timeframe.M1, T0_US, minute(N_BARS), page_limit=100, retry=retry)
    assert waits == [0.5, 1.0]
    assert [r.status for r in fake.requests_to(KLINES)][:3] == [503, 502, 200]
    assert_frame_equal(bars, bars_oracle(klines))


def test_persistent_server_error_gives_a_clear_error(
    fake: FakeBinance, exchange: Any, retry: RetryPolicy, waits: list[float]
) -> None:
    fake.inject(KLINES, *[server_error(503)] * 10)
    with pytest.raises(FetchError) as info:
        fetch_ohlcv(exchange, "ETH/USDT", Timeframe.M1, T0_US, minute(N_BARS), page_limit=100, retry=retry)
    message = str(info.value)
    assert "failed after 6 tries" in message and KLINES in message and "1m candles of ETH/USDT" in message
    assert "RetryPolicy" in message and "resumes" in message
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert len(fake.requests_to(KLINES)) == 6


def test_rate_limiter_spaces_requests(klines: list[list[Any]]) -> None:
    with FakeBinance(now_ms=T0_MS + 24 * HOUR_MS, klines={("ETHUSDT", "1m"): klines}) as server:
        ex = make_exchange("binance", api_urls=server.api_urls(), rate_limit_ms=100)
        assert ex.enableRateLimit and ex.rateLimit == 100
        with guard_local_only(ex) as guard:
            fetch_ohlcv(ex, "ETH/USDT", Timeframe.M1, T0_US, minute(N_BARS), page_limit=100)
    assert guard.refused == []
    kline_times = [t for t, url in zip(guard.sent_at, guard.sent, strict=True) if KLINES in url]
    gaps = [b - a for a, b in itertools.pairwise(kline_times)]
    # ccxt's spot klines cost 0.4 of the base interval: >= 40 ms apart (a lower bound; sleep never ends early).
    assert len(gaps) == 3 and min(gaps) >= 0.035


# ------------------------------------------------------------------------------------------- trades


def test_agg_trades_pages_reassemble_with_sides(
    fake: FakeBinance, exchange: Any, agg_trades: list[dict[str, Any]]
) -> None:
    trades = fetch_trades(exchange, "ETH/USDT", T0_US, T0_US + 4 * HOUR_MS * 1000)

    assert_frame_equal(trades, trades_oracle(agg_trades))
    assert trades.get_column("is_agg").all()
    assert set(trades.get_column("side").to_list()) == {-1, 1}
    logged = fake.requests_to(AGG)
    # Three quiet hour-windows, the window holding the first trade, then pages by id.
    assert [r.items for r in logged[:4]] == [0, 0, 0, 1000]
    assert all("fromId" not in r.params for r in logged[:4])
    # The last id page is empty: the only way to learn that no later trade exists yet.
    assert [(int(r.params["fromId"]), r.items) for r in logged[4:]] == [(2000, 1000), (3000, 600), (3600, 0)]
    assert all("startTime" not in r.params for r in logged[4:])


def test_agg_trades_stop_at_the_end_of_the_range(
    fake: FakeBinance, exchange: Any, agg_trades: list[dict[str, Any]]
) -> None:
    start_us, end_us = int(agg_trades[100]["T"]) * 1000, int(agg_trades[1500]["T"]) * 1000
    trades = fetch_trades(exchange, "ETH/USDT", start_us, end_us, page_limit=500)

    expected = trades_oracle(agg_trades).filter(pl.col("ts_us").is_between(start_us, end_us, closed="left"))
    assert_frame_equal(trades, expected)
    assert len(fake.requests_to(AGG)) == 3, "no page is asked for once a trade past the end was seen"


def test_time_paged_trades_drop_the_overlap() -> None:
    # Many trades share a millisecond, so time pages overlap at their edges; ids dedup them.
    records = make_agg_trades(TRADES_START_MS, 600, seed=13, max_gap_ms=3)
    with FakeBinance(now_ms=T0_MS + 24 * HOUR_MS, agg_trades={"ETHUSDT": records}) as server:
        with connected(server) as ex:
            trades = fetch_trades(
                ex,
                "ETH/USDT",
                TRADES_START_MS * 1000,
                (TRADES_START_MS + HOUR_MS) * 1000,
                page_limit=50,
                native=False,
            )
        served = sum(r.items or 0 for r in server.requests_to(AGG))
    assert_frame_equal(trades, trades_oracle(records))
    assert served > len(records), "the pages should have overlapped"


def test_time_paging_refuses_a_millisecond_with_more_trades_than_a_page() -> None:
    records = make_agg_trades(TRADES_START_MS, 30, seed=14, max_gap_ms=0)  # all in one millisecond
    start_us = TRADES_START_MS * 1000
    with FakeBinance(now_ms=T0_MS + 24 * HOUR_MS, agg_trades={"ETHUSDT": records}) as server:
        with connected(server) as ex, pytest.raises(FetchError, match="raise page_limit"):
            fetch_trades(ex, "ETH/USDT", start_us, start_us + HOUR_MS * 1000, page_limit=10, native=False)
        assert [r.items for r in server.requests_to(AGG)] == [10, 10], "the second page brought nothing new"


# ------------------------------------------------------------------------------- markets and guards


def test_spot_only(fake: FakeBinance, exchange: Any) -> None:
    with pytest.raises(FetchError, match="spot"):
        fetch_ohlcv(exchange, "ETH/USDT:USDT", Timeframe.M1, T0_US, minute(10))
    assert exchange.markets and all(m["spot"] for m in exchange.markets.values())
    assert {r.path for r in fake.requests} == {"/api/v3/exchangeInfo"}, "no futures endpoint was called"


def test_bad_request_is_not_retried(fake: FakeBinance, exchange: Any, retry: RetryPolicy, waits: list[float]) -> None:
    fake.inject(KLINES, Fault(400, '{"code": -1121, "msg": "Invalid symbol."}'))
    with pytest.raises(FetchError, match="not retried"):
        fetch_ohlcv(exchange, "BTC/USDT", Timeframe.M1, T0_US, minute(10), retry=retry)
    assert waits == []
    assert len(fake.requests_to(KLINES)) == 1


def test_guard_refuses_the_real_exchange() -> None:
    ex = make_exchange("binance")  # real URLs: the guard must stop the very first request
    with guard_local_only(ex) as guard, pytest.raises(FetchError, match="failed after 1 try"):
        fetch_ohlcv(ex, "ETH/USDT", Timeframe.M1, T0_US, minute(10), retry=RetryPolicy(max_retries=0))
    assert guard.sent == [] and len(guard.refused) == 1 and "api.binance.com" in guard.refused[0]


def test_make_exchange_rejects_typos() -> None:
    with pytest.raises(FetchError, match="unknown ccxt exchange"):
        make_exchange("binanse")
    with pytest.raises(FetchError, match="unknown urls"):
        make_exchange("binance", api_urls={"publik": "http://127.0.0.1:1/api/v3"})


# ---------------------------------------------------------------------------------------- download


def test_download_hands_out_disjoint_ordered_pages(exchange: Any, klines: list[list[Any]]) -> None:
    pages: list[pl.DataFrame] = []
    reports: list[DownloadProgress] = []
    summary = download(
        exchange,
        "ETH/USDT",
        Kind.BARS,
        Timeframe.M1,
        T0_US,
        minute(N_BARS),
        on_page=pages.append,
        progress=reports.append,
        page_limit=100,
    )
    opens = pl.concat(pages).get_column("open_us")
    assert opens.is_sorted() and opens.n_unique() == opens.len() == len(klines)
    assert [p.height for p in pages] == [100, 100, 100, 49]
    assert [r.pages for r in reports] == [1, 2, 3, 4]
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0, abs=1e-6)
    assert (summary.first_us, summary.last_us, summary.rows) == (T0_US, minute(N_BARS - 1), len(klines))


def test_download_with_nothing_left_makes_no_request(fake: FakeBinance, exchange: Any) -> None:
    summary = download(
        exchange,
        "ETH/USDT",
        Kind.BARS,
        Timeframe.M1,
        T0_US,
        minute(10),
        on_page=lambda _: None,
        resume_from_us=minute(9),
    )
    assert (summary.pages, summary.rows, summary.last_us) == (0, 0, None)
    assert fake.requests == []


def test_resume_start_us() -> None:
    assert resume_start_us(Kind.BARS, 100, None, Timeframe.M1) == 100
    assert resume_start_us(Kind.BARS, 0, minute(5), Timeframe.M1) == minute(6)
    assert resume_start_us(Kind.BARS, minute(9), minute(5), Timeframe.M1) == minute(9)
    assert resume_start_us(Kind.TRADES, 0, 1_234_567) == 1_234_567, "trades resume at the same time"
    with pytest.raises(ValueError, match="timeframe"):
        resume_start_us(Kind.BARS, 0, 5)
