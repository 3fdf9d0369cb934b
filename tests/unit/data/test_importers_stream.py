"""Streaming trade import and day-by-day resampling: the same result as the whole-file path, in chunks."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rltrade.data.cleaning import BadRowError, CleaningReport, Problem, RowRef
from rltrade.data.importers import import_file
from rltrade.data.importers_stream import iter_trade_chunks
from rltrade.data.pipeline import import_to_store, resample_in_store
from rltrade.data.resample import trades_to_bars
from rltrade.data.store import DatasetKey, Store, StoreConflictError
from rltrade.types import US_PER_DAY, Kind, Timeframe

T0_MS = 1_722_470_400_000  # 2024-08-01 00:00 UTC
TRADES = DatasetKey("binance", "ETHUSDT", Kind.TRADES)


def trade_lines(n: int, *, start_ms: int = T0_MS, step_ms: int = 700, first_id: int = 0) -> list[str]:
    """Binance spot trades (7 columns, headerless): id, price, qty, quote_qty, time, is_buyer_maker, best."""
    rng = np.random.default_rng(n)
    price = np.round(2500 + np.cumsum(rng.normal(0, 0.2, n)), 2)
    out = []
    for i in range(n):
        qty = round(0.001 + (i % 13) * 0.01, 4)
        maker = "true" if i % 3 else "false"
        out.append(f"{first_id + i},{price[i]},{qty},{price[i] * qty},{start_ms + i * step_ms},{maker},true")
    return out


def write(path: Path, lines: list[str]) -> Path:
    data = ("\n".join(lines) + "\n").encode()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    elif path.suffix == ".zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(path.name.removesuffix(".zip") + ".csv", data)
    else:
        path.write_bytes(data)
    return path


def streamed(path: Path, chunk_bytes: int, **kw: object) -> tuple[pl.DataFrame, CleaningReport, int]:
    chunks = list(iter_trade_chunks(path, chunk_bytes=chunk_bytes, **kw))  # type: ignore[arg-type]
    frame = pl.concat([c.frame for c in chunks]).sort("ts_us", "trade_id")
    return frame, CleaningReport.merged([c.report for c in chunks]), len(chunks)


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".zip"])
def test_chunks_equal_the_whole_file_import_with_the_same_line_numbers(tmp_path: Path, suffix: str) -> None:
    lines = trade_lines(500)
    lines[40] = lines[40].replace(",true,true", ",true,true").replace(lines[40].split(",")[2], "-1", 1)  # bad qty
    lines[333] = lines[333].replace(lines[333].split(",")[1], "nan", 1)  # bad price, in a later chunk
    lines.insert(250, "")  # a blank line in the middle
    path = write(tmp_path / f"ETHUSDT-trades-2024-08-01{suffix}", lines)
    whole = import_file(path)
    frame, report, n_chunks = streamed(path, 2_000)
    assert n_chunks > 10
    assert frame.equals(whole.frame)
    assert (
        report.counts
        == whole.report.counts
        == {
            Problem.BLANK_LINE: 1,
            Problem.NEGATIVE_QTY: 1,
            Problem.NON_FINITE_PRICE: 1,
        }
    )
    src = whole.report.sources[0]
    assert (
        report.examples[Problem.NON_FINITE_PRICE]
        == (RowRef(src, 335),)
        == whole.report.examples[Problem.NON_FINITE_PRICE]
    )
    late = trade_lines(500)
    late[333] = late[333].replace(late[333].split(",")[1], "nan", 1)
    late_path = write(tmp_path / f"ETHUSDT-trades-late{suffix}", late)
    with pytest.raises(BadRowError, match=r"line 334, column 'price'"):
        list(iter_trade_chunks(late_path, chunk_bytes=2_000, policy="strict"))


def test_a_klines_file_is_refused_before_anything_is_yielded(tmp_path: Path) -> None:
    path = write(tmp_path / "ETHUSDT-1m-2024-08-01.csv", [f"{T0_MS + i * 60_000},1,2,0.5,1.5,10" for i in range(5)])
    with pytest.raises(ValueError, match="klines file, not trades"):
        next(iter_trade_chunks(path))


@pytest.mark.parametrize("hold_rows", [2_000_000, 700])  # everything held till the end; whole days as they fill
def test_streamed_store_import_counts_cross_chunk_duplicates_and_is_all_or_nothing(
    tmp_path: Path, hold_rows: int
) -> None:
    lines = trade_lines(3_000, step_ms=90_000)  # 3.1 days
    a = write(tmp_path / "ETHUSDT-trades-a.csv", lines[:2_000])
    b = write(tmp_path / "ETHUSDT-trades-b.csv.gz", lines[1_500:])  # overlaps a by 500 trades
    store = Store(tmp_path / "store")
    summary, _ = import_to_store([a, b], store, exchange="binance", chunk_bytes=5_000, hold_rows=hold_rows)
    (res,) = summary.appended.values()
    assert (res.rows_in, res.rows_new, res.rows_duplicate) == (3_500, 3_000, 500)
    assert store.read(TRADES).equals(import_file(write(tmp_path / "ETHUSDT-trades-all.csv", lines)).frame)
    before = sorted((p.name, p.stat().st_size) for p in store.root.rglob("*"))
    clash = [*lines[2_900:], lines[10].replace(",true,true", ",false,true")]  # a stored id with another side
    c = write(
        tmp_path / "ETHUSDT-trades-c.csv",
        trade_lines(50, start_ms=T0_MS + 10 * US_PER_DAY // 1000, first_id=10**6) + clash,
    )
    with pytest.raises(StoreConflictError, match="column 'side'"):
        import_to_store([c], store, exchange="binance", chunk_bytes=1_000)
    assert sorted((p.name, p.stat().st_size) for p in store.root.rglob("*")) == before


def test_day_by_day_resampling_equals_resampling_everything_at_once(tmp_path: Path) -> None:
    day1 = trade_lines(2_000, step_ms=40_000)  # ~0.9 day
    day3 = trade_lines(500, start_ms=T0_MS + 2 * 86_400_000 + 3_600_000, step_ms=1_000, first_id=5_000)
    path = write(tmp_path / "ETHUSDT-trades-x.csv", day1 + day3)  # nothing on 2024-08-02
    store = Store(tmp_path / "store")
    import_to_store([path], store, exchange="binance")
    assert len(store.partitions(TRADES)) == 2
    _, note = resample_in_store(store, exchange="binance", symbol="ETHUSDT", src=None, dst=Timeframe.S1)
    want = trades_to_bars(store.read(TRADES), Timeframe.S1)
    got = store.read(DatasetKey("binance", "ETHUSDT", Kind.BARS, Timeframe.S1))
    assert got.equals(want)
    assert f"{want.height:,} 1s bars" in note
