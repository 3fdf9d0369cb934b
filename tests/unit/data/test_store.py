"""Parquet store: idempotent appends, conflicts, range reads, coverage, partition sizing, lock, damage."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rltrade.data.schema import BAR_SCHEMA, TRADE_SCHEMA
from rltrade.data.store import (
    DatasetKey,
    LegacyLayoutError,
    Store,
    StoreConflictError,
    StoreCorruptError,
    StoreLockedError,
)
from rltrade.data.store_legacy import migrate
from rltrade.types import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE, Kind, Timeframe

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
    files = sorted(tmp_path.rglob("*"))
    with pytest.raises(StoreConflictError) as err:
        store.append(M1, bad)
    msg = str(err.value)
    assert "open_us 2023-12-09T00:00:00Z" in msg and "column 'close' is 100.0 in the store and 101.0" in msg
    assert "Nothing was written" in msg and str(DAY0) not in msg  # ISO times, not raw µs
    assert store.read(M1).equals(before)
    assert sorted(tmp_path.rglob("*")) == files


def test_range_read_is_half_open_and_only_touches_needed_days(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.append(M1, minute_bars(DAY0, 3 * 24 * 60))
    start, end = DAY0 + US_PER_DAY + 5 * US_PER_MINUTE, DAY0 + US_PER_DAY + 15 * US_PER_MINUTE
    got = store.read(M1, start, end)
    assert got.height == 10
    assert got.get_column("open_us").min() == start
    assert got.get_column("open_us").max() == end - US_PER_MINUTE
    # Remove the other days' files: a range read of the middle day must not need them.
    parts = store.partitions(M1)
    assert [label for label, _ in parts] == ["2023-12-09", "2023-12-10", "2023-12-11"]
    for label, entry in parts:
        if label != "2023-12-10":
            os.remove(M1.folder(tmp_path) / entry.file)
    assert store.read(M1, start, end).height == 10


def test_last_time_and_coverage_report_gaps(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert store.last_time(M1) is None
    bars = minute_bars(DAY0, 120).filter(
        ~pl.col("open_us").is_in([DAY0 + 10 * US_PER_MINUTE, DAY0 + 11 * US_PER_MINUTE])
    )
    store.append(M1, bars)
    assert store.last_time(M1) == DAY0 + 119 * US_PER_MINUTE
    cov = store.coverage(M1)
    assert (cov.rows, cov.missing, cov.holes, cov.filled) == (118, 2, 1, 0)
    assert cov.longest is not None
    assert (cov.longest.after_us, cov.longest.before_us) == (DAY0 + 9 * US_PER_MINUTE, DAY0 + 12 * US_PER_MINUTE)


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


def hour_bars(start_us: int, n: int) -> pl.DataFrame:
    return minute_bars(0, n).with_columns(open_us=start_us + pl.int_range(0, n, dtype=pl.Int64) * US_PER_HOUR)


def test_partitions_are_sized_to_the_timeframe(tmp_path: Path) -> None:
    store = Store(tmp_path)
    h1 = DatasetKey("binance", "ETHUSDT", Kind.BARS, Timeframe.H1)
    d1 = DatasetKey("binance", "ETHUSDT", Kind.BARS, Timeframe.D1)
    store.append(h1, hour_bars(DAY0, 24 * 60))  # 2023-12-09 .. 2024-02-06: three months
    d1_bars = minute_bars(0, 400).with_columns(open_us=DAY0 + pl.int_range(0, 400, dtype=pl.Int64) * US_PER_DAY)
    res = store.append(d1, d1_bars)
    assert [label for label, _ in store.partitions(h1)] == ["2023-12", "2024-01", "2024-02"]
    assert [label for label, _ in store.partitions(d1)] == ["2023", "2024", "2025"]
    assert res.days_written == 3
    assert len(list(h1.folder(tmp_path).glob("*.parquet"))) == 3
    assert store.read(d1).equals(store.read(d1, DAY0, DAY0 + 400 * US_PER_DAY))
    assert store.days(h1)[0].isoformat() == "2023-12-09" and len(store.days(h1)) == 60


def test_a_nine_month_hole_between_imports_is_reported(tmp_path: Path) -> None:
    store = Store(tmp_path)
    h1 = DatasetKey("binance", "ETHUSDT", Kind.BARS, Timeframe.H1)
    store.append(h1, hour_bars(DAY0, 24 * 30))
    later = DAY0 + 300 * US_PER_DAY
    store.append(h1, hour_bars(later, 24 * 30))
    cov = store.coverage(h1)
    assert cov.holes == 1
    assert cov.missing == (later - DAY0) // US_PER_HOUR - 24 * 30
    assert cov.longest is not None and cov.longest.before_us == later
    assert cov.longest.after_us == DAY0 + (24 * 30 - 1) * US_PER_HOUR


def test_trade_silences_over_an_hour_are_holes(tmp_path: Path) -> None:
    store = Store(tmp_path)
    ts = [DAY0 + 1, DAY0 + 2 * US_PER_HOUR, DAY0 + 3 * US_PER_DAY]
    trades = pl.DataFrame(
        {"ts_us": ts, "trade_id": [1, 2, 3], "price": [1.0, 1.0, 1.0], "qty": [1.0] * 3, "side": [1, 1, 1]},
        schema_overrides={"side": pl.Int8},
    )
    store.append(TRADES, trades)
    cov = store.coverage(TRADES)
    assert (cov.holes, cov.missing) == (2, 0)
    assert cov.longest is not None and (cov.longest.after_us, cov.longest.before_us) == (ts[1], ts[2])


def test_truncated_file_is_a_store_error_naming_it(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.append(M1, minute_bars(DAY0, 3 * 24 * 60))
    (label, entry), *_ = store.partitions(M1)
    path = M1.folder(tmp_path) / entry.file
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(StoreCorruptError, match=rf"{path}: damaged store file.*data check --store"):
        store.read(M1)
    assert store.read(M1, DAY0 + US_PER_DAY).height == 2 * 24 * 60  # the other days still read
    with pytest.raises(StoreCorruptError, match=str(path)):
        store.append(M1, minute_bars(DAY0 + 5 * US_PER_MINUTE, 3))
    assert [(k, lab) for k, lab, _ in store.check()] == [(M1, label)]
    # Same size, damaged footer: the size check passes, parquet's own check names the file.
    store.drop_bad()
    assert store.check() == [] and store.read(M1).height == 2 * 24 * 60
    (_, entry), *_ = store.partitions(M1)
    path = M1.folder(tmp_path) / entry.file
    raw = bytearray(path.read_bytes())
    raw[-4:] = b"XXXX"
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreCorruptError, match=str(path)):
        store.read(M1)


def test_second_writer_times_out_with_a_clear_message(tmp_path: Path) -> None:
    import filelock

    holder = filelock.FileLock(tmp_path / ".rltrade-store.lock")
    with holder, pytest.raises(StoreLockedError, match="another rltrade process is writing"):
        Store(tmp_path, lock_timeout_s=0.05).append(M1, minute_bars(DAY0, 3))
    assert Store(tmp_path).append(M1, minute_bars(DAY0, 3)).rows_new == 3  # released: the next one proceeds


def write_legacy(root: Path, key: DatasetKey, frame: pl.DataFrame) -> None:
    """Layout 1: one ``date=YYYY-MM-DD/part.parquet`` per UTC day."""
    day = pl.col(key.time_col) // US_PER_DAY
    for (d,), part in frame.with_columns(day.alias("_d")).group_by(["_d"]):
        date = (np.datetime64("1970-01-01") + np.timedelta64(int(d), "D")).astype(str)
        folder = key.folder(root) / f"date={date}"
        folder.mkdir(parents=True)
        part.drop("_d").write_parquet(folder / "part.parquet")


def test_old_layout_is_refused_then_migrated(tmp_path: Path) -> None:
    h1 = DatasetKey("binance", "ETHUSDT", Kind.BARS, Timeframe.H1)
    bars = pl.concat([hour_bars(DAY0, 24 * 40), hour_bars(DAY0 + 100 * US_PER_DAY, 24)])
    write_legacy(tmp_path, h1, Store(tmp_path / "x").read(h1).vstack(_conform(bars)))
    store = Store(tmp_path)
    with pytest.raises(LegacyLayoutError, match="rltrade data migrate"):
        store.read(h1)
    with pytest.raises(LegacyLayoutError):
        store.append(h1, bars.head(1))
    assert migrate(store) == {h1: bars.height}
    assert store.read(h1).equals(_conform(bars))
    assert [label for label, _ in store.partitions(h1)] == ["2023-12", "2024-01", "2024-03"]
    assert not list(tmp_path.rglob("date=*"))
    assert migrate(store) == {}


def _conform(frame: pl.DataFrame) -> pl.DataFrame:
    from rltrade.data.schema import conform

    return conform(frame, BAR_SCHEMA, what="test")
