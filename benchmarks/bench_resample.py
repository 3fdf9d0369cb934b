"""Ticks → 1s bars: ``rltrade.data.resample.trades_to_bars`` vs pandas ``resample("1s").ohlc()``.

Baseline: pandas ``Series.resample("1s").ohlc()`` on price plus ``.sum()`` on quantity, over a
DatetimeIndex built before timing. rltrade does strictly more work in the timed call (input checks,
quote and taker-buy volume, trade counts, carried closes for empty seconds), so the ratio is conservative.

Run: ``.venv/bin/python -m benchmarks.bench_resample [--quick]`` (10M trades; 1M with --quick).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import polars as pl

from benchmarks._util import quick_parser, report_ratio, time_interleaved
from rltrade.data.resample import trades_to_bars
from rltrade.types import Timeframe

START_US = 1_723_161_600_000_000  # 2024-08-09 00:00:00 UTC


def synthetic_trades(n: int, *, seed: int = 0, rate_per_s: float = 20.0) -> pl.DataFrame:
    """``n`` trades in TRADE_SCHEMA: Poisson arrivals, random-walk price on a 0.01 tick, lognormal sizes."""
    rng = np.random.default_rng(seed)
    gaps_us = rng.exponential(1e6 / rate_per_s, n).astype(np.int64)
    ts_us = START_US + np.cumsum(gaps_us)
    price = np.round(2500.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-5, n))), 2)
    qty = np.round(rng.lognormal(-3.0, 1.5, n), 4) + 1e-4
    side = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)
    return pl.DataFrame(
        {
            "ts_us": ts_us,
            "trade_id": np.arange(n, dtype=np.int64),
            "price": price,
            "qty": qty,
            "side": side,
            "is_agg": np.zeros(n, dtype=bool),
        }
    )


def pandas_1s(frame: pd.DataFrame) -> pd.DataFrame:
    """The baseline: OHLC of price and summed volume per second (empty seconds are NaN / 0)."""
    bars = frame["price"].resample("1s").ohlc()
    bars["volume"] = frame["qty"].resample("1s").sum()
    return bars


def main() -> None:
    args = quick_parser(__doc__ or "").parse_args()
    n = 1_000_000 if args.quick else 10_000_000
    repeats = max(3, args.repeats)
    trades = synthetic_trades(n)
    frame = pd.DataFrame(
        {"price": trades["price"].to_numpy(), "qty": trades["qty"].to_numpy()},
        index=pd.to_datetime(trades["ts_us"].to_numpy(), unit="us"),
    )
    span_s = (frame.index[-1] - frame.index[0]).total_seconds()
    print(
        f"ticks → 1s bars, {n:,} trades over {span_s:,.0f} s; {len(os.sched_getaffinity(0))} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )

    (ours, one_thread, base), results = time_interleaved(
        {
            "rltrade": lambda: trades_to_bars(trades, Timeframe.S1),
            "rltrade 1 thread": lambda: trades_to_bars(trades, Timeframe.S1, n_threads=1),
            "pandas": lambda: pandas_1s(frame),
        },
        repeats=repeats,
    )
    bars, ref = results["rltrade"], results["pandas"]
    assert isinstance(bars, pl.DataFrame) and isinstance(ref, pd.DataFrame)
    if bars.height != len(ref):
        raise SystemExit(f"bar counts differ: rltrade {bars.height}, pandas {len(ref)}")
    traded = ~bars["is_filled"].to_numpy()
    for col in ("open", "high", "low", "close", "volume"):
        if not np.allclose(bars[col].to_numpy()[traded], ref[col].to_numpy()[traded], rtol=1e-12):
            raise SystemExit(f"{col} differs between rltrade and pandas")
    report_ratio(ours, base, items=n, unit="trades")
    print(
        f"  (single-threaded rltrade: {one_thread.median_s * 1e3:.1f} ms, "
        f"{base.median_s / one_thread.median_s:.2f}x pandas)"
    )


if __name__ == "__main__":
    main()
