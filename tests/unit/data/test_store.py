"""Parquet store: idempotent atomic appends, conflicts, range reads, coverage."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rltrade.data.schema import BAR_SCHEMA, TRADE_SCHEMA
from rltrade.data.store import DatasetKey, Store, StoreError
from rltrade.types import US_PER_DAY, US_PER_MINUTE, Kind, Timeframe

DAY0 = 19_700 * US_PER_DAY  # 2023-12-09 00:00 UTC
M1 = DatasetKey("binance", "ETHUSDT", Kind.BARS, Timeframe.M1)
TRADES = DatasetKey("binance", "ETHUSDT", Kind.TRADES)


def minute_bars(start_us: int, n: int, *, price: float = 100.0) -> pl.DataFrame:
    close = price + np.arange(n, dtype=np.float64)
    return pl.DataFrame(
        {
            "open_us": start_us + np.arange(n, dtype=np.int64) * US_PER_MINUTE,
            "open": close - 0.5,
            "high": close + 1.0,
            "low": close - 1.0,
            "close": close,
            "volume": np.full(n, 2.0),
        }
    )


def test_append_then_read_roundtrip_across_days(tmp_path: Path) -> None:
    store = Store(tmp_path)
    bars = minute_bars(DAY0 + US_PER_DAY - 30 * US_PER_MINUTE, 60)  # 30 min on each of two days
    res = store.append(M1, bars)
    assert (res.rows_in, res.rows_new, res.rows_duplicate, res.days_written) == (60, 60, 0, 2)
    got = store.read(M1)
    assert got.schema == pl.Schema(BAR_SCHEMA)
    assert got.get_column("open_us").to_list() == bars.get_column("open_us").to_list()
    assert got.get_column("is_filled").sum() == 0
    assert len(store.days(M1)) == 2
    assert store.datasets() == [M1]


def test_append_is_idempotent_and_merges_overlap(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.append(M1, minute_bars(DAY0, 100))
    again = store.append(M1, minute_bars(DAY0, 100))
    assert (again.rows_new, again.rows_duplicate, again.days_written) == (0, 100, 0)
    overlap = store.append(M1, minute_bars(DAY0 + 50 * US_PER_MINUTE, 100, price=150.0))
    assert (overlap.rows_new, overlap.rows_duplicate) == (50, 50)
    assert store.read(M1).height == 150


def test_conflicting_rows_raise_and_leave_store_untouched(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.append(M1, minute_bars(DAY0, 10))
    before = store.read(M1)
    bad = minute_bars(DAY0, 10).with_columns(pl.col("close") + 1)
    with pytest.raises(StoreError, match="different values"):
        store.append(M1, bad)
    assert store.read(M1).equals(before)


def test_range_read_is_half_open_and_only_touches_needed_days(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.append(M1, minute_bars(DAY0, 3 * 24 * 60))
    start, end = DAY0 + US_PER_DAY + 5 * US_PER_MINUTE, DAY0 + US_PER_DAY + 15 * US_PER_MINUTE
    got = store.read(M1, start, end)
    assert got.height == 10
    assert got.get_column("open_us").min() == start
    assert got.get_column("open_us").max() == end - US_PER_MINUTE
    # Remove the other days' files: a range read of the middle day must not need them.
    for day in store.days(M1):
        if day != store.days(M1)[1]:
            os.remove(M1.folder(tmp_path) / f"date={day.isoformat()}" / "part.parquet")
    assert store.read(M1, start, end).height == 10


def test_last_time_and_coverage_report_gaps(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert store.last_time(M1) is None
    bars = minute_bars(DAY0, 120).filter(
        ~pl.col("open_us").is_in([DAY0 + 10 * US_PER_MINUTE, DAY0 + 11 * US_PER_MINUTE])
    )
    store.append(M1, bars)
    assert store.last_time(M1) == DAY0 + 119 * US_PER_MINUTE
    (cov,) = store.coverage(M1)
    assert (cov.rows, cov.expected, cov.missing, cov.filled) == (118, 1440, 2, 0)


def test_trades_dedup_by_trade_id(tmp_path: Path) -> None:
    store = Store(tmp_path)
    trades = pl.DataFrame(
        {
            "ts_us": [DAY0 + 1, DAY0 + 2, DAY0 + 2],
            "trade_id": [1, 2, 3],
            "price": [10.0, 10.5, 10.4],
            "qty": [1.0, 0.5, 0.1],
            "side": [1, -1, 1],
        },
        schema_overrides={"side": pl.Int8},
    )
    assert store.append(TRADES, trades).rows_new == 3
    assert store.append(TRADES, trades.head(2)).rows_duplicate == 2
    got = store.read(TRADES)
    assert got.schema == pl.Schema(TRADE_SCHEMA)
    assert got.get_column("trade_id").to_list() == [1, 2, 3]
    assert not got.get_column("is_agg").any()


def test_missing_column_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"missing column\(s\) \['close'\]"):
        Store(tmp_path).append(M1, minute_bars(DAY0, 3).drop("close"))


def test_crash_during_write_leaves_previous_day_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    store.append(M1, minute_bars(DAY0, 10))
    before = store.read(M1)

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        store.append(M1, minute_bars(DAY0 + 10 * US_PER_MINUTE, 10))
    monkeypatch.undo()
    assert store.read(M1).equals(before)
    leftovers = list(M1.folder(tmp_path).rglob("*.tmp"))
    assert leftovers == []
