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

from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._util import quick_parser, report_ratio, time_median
from rltrade.data.importers import import_file

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


if __name__ == "__main__":
    main()
