"""Real 1h klines import: ``rltrade.data.importers.import_file`` vs ``pandas.read_csv`` + the same conversions.

Input: ``../shared/data/real/binance_spot_{ETH,BTC}USDT_1h_2018-01-01_2026-05-16.csv.gz`` (73,265 rows each;
ETH only with --quick). Baseline: ``pandas.read_csv`` of the gzip file, then the conversions rltrade does to
reach ``BAR_SCHEMA``: ms → µs open time, renamed columns, null quote volume / trade count / taker volume,
``is_filled=False``. rltrade does strictly more in the timed call (layout sniffing, time-unit detection,
timeframe inference, every value check of ``cleaning``, duplicate and order checks), so the ratio is
conservative. Skips with a message when the real data folder is absent.

Run: ``.venv/bin/python -m benchmarks.bench_import [--quick] [--repeats N]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from benchmarks._util import quick_parser, report_ratio, time_median
from rltrade.data.importers import import_file
from rltrade.data.store import DatasetKey, Store
from rltrade.types import Kind, Timeframe

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"
FILES = ("binance_spot_ETHUSDT_1h_2018-01-01_2026-05-16.csv.gz", "binance_spot_BTCUSDT_1h_2018-01-01_2026-05-16.csv.gz")


def pandas_import(path: Path) -> pd.DataFrame:
    """The baseline: read with pandas and convert to the BAR_SCHEMA columns and dtypes, no checks."""
    raw = pd.read_csv(path)
    n = len(raw)
    return pd.DataFrame(
        {
            "open_us": raw["open_time"].to_numpy(dtype=np.int64) * 1000,
            "open": raw["open"].to_numpy(dtype=np.float64),
            "high": raw["high"].to_numpy(dtype=np.float64),
            "low": raw["low"].to_numpy(dtype=np.float64),
            "close": raw["close"].to_numpy(dtype=np.float64),
            "volume": raw["volume"].to_numpy(dtype=np.float64),
            "quote_volume": np.full(n, np.nan),
            "trade_count": pd.array([None] * n, dtype="Int64"),
            "taker_buy_volume": np.full(n, np.nan),
            "is_filled": np.zeros(n, dtype=bool),
        }
    )


def main() -> None:
    args = quick_parser(__doc__ or "").parse_args()
    paths = [REAL / name for name in (FILES[:1] if args.quick else FILES)]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"bench_import skipped: real data absent ({missing[0]})")
        return
    repeats = max(3, args.repeats)
    ours, results = time_median("rltrade import_file", lambda: [import_file(p) for p in paths], repeats=repeats)
    base, frames = time_median("pandas read_csv", lambda: [pandas_import(p) for p in paths], repeats=repeats)
    rows = sum(r.frame.height for r in results)
    for res, frame in zip(results, frames, strict=True):  # same data out of both, or the timing means nothing
        assert np.array_equal(res.frame["open_us"].to_numpy(), frame["open_us"].to_numpy())
        assert np.array_equal(res.frame["close"].to_numpy(), frame["close"].to_numpy())
    print(f"1h klines import, {len(paths)} file(s), {rows:,} rows")
    report_ratio(ours, base, items=rows, unit="rows")
    bench_store_read([r.frame for r in results], repeats)


def bench_store_read(frames: list[pl.DataFrame], repeats: int) -> None:
    """Append the imported bars to a fresh store, then time a one-month range read.

    Baseline: reading every stored partition of the dataset and filtering afterwards (what a store without
    partitions and pushed-down filters would do).
    """
    import tempfile

    with tempfile.TemporaryDirectory() as root:
        store = Store(Path(root))
        keys = [DatasetKey("binance", sym, Kind.BARS, Timeframe.H1) for sym in ("ETHUSDT", "BTCUSDT")[: len(frames)]]
        t0 = time.perf_counter()
        for key, frame in zip(keys, frames, strict=True):
            store.append(key, frame)
        append_s = time.perf_counter() - t0
        start = 1_714_521_600_000_000  # 2024-05-01 UTC
        end = start + 31 * 86_400_000_000

        def ranged() -> list[pl.DataFrame]:
            return [store.read(k, start, end) for k in keys]

        def full_then_filter() -> list[pl.DataFrame]:
            return [store.read(k).filter((pl.col("open_us") >= start) & (pl.col("open_us") < end)) for k in keys]

        ours, got = time_median("store range read (1 month)", ranged, repeats=repeats)
        base, want = time_median("read all, then filter", full_then_filter, repeats=repeats)
        assert all(a.equals(b) for a, b in zip(got, want, strict=True))
        files = len(store.partitions(keys[0]))
        print(
            f"store: appended {sum(f.height for f in frames):,} rows into {files:,} month files per symbol "
            f"in {append_s:.1f} s"
        )
        report_ratio(ours, base, items=sum(g.height for g in got), unit="rows")


if __name__ == "__main__":
    main()
