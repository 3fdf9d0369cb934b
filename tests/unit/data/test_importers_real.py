"""Importers on the real Binance files in ``<repo>/../shared/data/real`` (skipped when that folder is absent).

Row counts are the files' (README: ~43,208 1m rows per symbol, 73,265 1h, 2,099 / 3,078 1d, 14,515 / 19,904
spot trades, 14,076 / 21,313 USDⓈ-M trades, 58,758 / 73,174 book updates, ~7,100 funding rates).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rltrade.data.importers import FileKind, import_file, median_half_spread_bps, read_book_ticker, read_funding
from rltrade.types import US_PER_HOUR, Timeframe

REAL = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "real"
pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(not REAL.is_dir(), reason=f"real data folder {REAL} is absent"),
]

KLINES = [
    ("binance_spot_ETHUSDT_1m_2024-07-26_2024-08-25.csv.gz", "ETHUSDT", Timeframe.M1, 43_208),
    ("binance_spot_BTCUSDT_1m_2024-07-26_2024-08-25.csv.gz", "BTCUSDT", Timeframe.M1, 43_209),
    ("binance_spot_ETHUSDT_1h_2018-01-01_2026-05-16.csv.gz", "ETHUSDT", Timeframe.H1, 73_265),
    ("binance_spot_BTCUSDT_1h_2018-01-01_2026-05-16.csv.gz", "BTCUSDT", Timeframe.H1, 73_265),
    ("binance_spot_ETHUSDT_1d_2020-02-24_2025-11-22.csv.gz", "ETHUSDT", Timeframe.D1, 2_099),
    ("binance_spot_BTCUSDT_1d_2020-02-24_2025-11-22.csv.gz", "BTCUSDT", Timeframe.D1, 2_099),
    ("binance_spot_BTCUSDT_1d_2017-08-17_2026-01-19.csv.gz", "BTCUSDT", Timeframe.D1, 3_078),
]
TRADES = [
    ("binance_spot_ETHUSDT_trades_2024-08-08T2354_2024-08-09T0005.csv.gz", "ETHUSDT", 14_515),
    ("binance_spot_BTCUSDT_trades_2024-08-08T2354_2024-08-09T0005.csv.gz", "BTCUSDT", 19_904),
    ("binance_usdm_ETHUSDT_trades_2024-08-08T2354_2024-08-08T2359.csv.gz", "ETHUSDT", 14_076),
    ("binance_usdm_BTCUSDT_trades_2024-08-08T2354_2024-08-08T2359.csv.gz", "BTCUSDT", 21_313),
]


@pytest.mark.parametrize(("name", "symbol", "timeframe", "rows"), KLINES)
def test_real_klines(name: str, symbol: str, timeframe: Timeframe, rows: int) -> None:
    res = import_file(REAL / name, policy="strict")  # strict: any repair would raise
    assert (res.kind, res.symbol, res.timeframe, res.frame.height) == (FileKind.KLINES, symbol, timeframe, rows)
    assert res.report.is_clean and res.report.rows_in == rows
    assert res.frame["open_us"].diff().drop_nulls().min() == timeframe.us  # strictly increasing, on the grid
    raw = pl.read_csv(REAL / name)
    assert res.frame["open_us"].to_list() == (raw["open_time"] * 1000).to_list()  # ms → µs, nothing else
    assert res.frame.select("open", "high", "low", "close", "volume").equals(raw.drop("open_time"))


def test_real_1h_gaps_are_the_known_outages() -> None:
    bars = import_file(REAL / "binance_spot_ETHUSDT_1h_2018-01-01_2026-05-16.csv.gz").frame
    span_hours = (bars["open_us"][-1] - bars["open_us"][0]) // US_PER_HOUR + 1
    assert span_hours - bars.height == 122  # README: 122 missing hours in 27 outages
    assert int((bars["open_us"].diff() > US_PER_HOUR).sum()) == 27


@pytest.mark.parametrize(("name", "symbol", "rows"), TRADES)
def test_real_trades_use_the_exchange_clock(name: str, symbol: str, rows: int) -> None:
    res = import_file(REAL / name, policy="strict")
    assert (res.kind, res.symbol, res.frame.height) == (FileKind.RECORDED_TRADES, symbol, rows)
    assert res.report.is_clean
    assert res.frame["ts_us"].is_sorted() and res.frame["trade_id"].diff().drop_nulls().to_list() == [1] * (rows - 1)
    raw = pl.read_csv(REAL / name)
    assert res.frame["ts_us"].to_list() == (raw["trade_time_ms"] * 1000).to_list()
    # The recorder's clock runs ~1.2 s behind the exchange: our times must be that far ahead of it.
    lead_s = float(np.median((res.frame["ts_us"] - raw["local_ts_ns"] // 1000).to_numpy())) / 1e6
    assert 1.0 < lead_s < 1.5
    assert res.frame["side"].to_list() == [-1 if m else 1 for m in raw["is_buyer_maker"]]


@pytest.mark.parametrize(
    ("name", "rows"),
    [
        ("binance_spot_ETHUSDT_bookTicker_2024-08-08T2354_2024-08-09T0005.csv.gz", 58_758),
        ("binance_spot_BTCUSDT_bookTicker_2024-08-08T2354_2024-08-09T0005.csv.gz", 73_174),
    ],
)
def test_real_book_ticker_and_half_spread(name: str, rows: int) -> None:
    book = read_book_ticker(REAL / name)
    assert book.height == rows and book["ts_us"].is_sorted()
    # Oracle: the same statistic in plain Python.
    oracle = statistics.median(
        (a - b) / (a + b) * 1e4 for a, b in zip(book["ask_price"], book["bid_price"], strict=True)
    )
    assert median_half_spread_bps(book) == pytest.approx(oracle, rel=1e-12)
    assert 0.0 < median_half_spread_bps(book) < 0.05  # one tick on ETH/BTC is well under 0.05 bp


@pytest.mark.parametrize(
    ("name", "rows"),
    [
        ("binance_usdm_ETHUSDT_fundingrate_2019-11-27_2026-05-17.csv.gz", 7_089),
        ("binance_usdm_BTCUSDT_fundingrate_2019-09-10_2026-05-17.csv.gz", 7_323),
    ],
)
def test_real_funding(name: str, rows: int) -> None:
    funding = read_funding(REAL / name)
    assert funding.height == rows
    assert funding["ts_us"].diff().drop_nulls().to_numpy().min() > 0
    assert funding["ts_us"].diff().mode().to_list() == [8 * US_PER_HOUR]
