"""A month of trades per symbol, imported and resampled to 1s bars in bounded memory.

Input: one synthetic Binance spot trades file per symbol for 30 days of August 2024 (headerless, the 7
columns of ``SYMBOL-trades-YYYY-MM.csv``), at realistic rates: ETH 12 trades/s and BTC 12.5 trades/s on
average (31.1M and 32.4M rows; ~2 GB of CSV each). Poisson arrivals, a random-walk price on a 0.01
tick, lognormal sizes, random aggressor side.

Timed, in a child process per symbol so that its peak RSS is the job's alone: ``import_to_store`` (the file
streamed in 64 MiB chunks, every check of ``cleaning``, one store transaction) and ``resample_in_store``
(trades → 1s bars one stored day at a time). The target is a peak RSS under 4 GiB; what the whole file
would need in memory at once (its CSV bytes plus the parsed frame) is printed beside it. Run once, in the
background, with nice: it writes ~4 GB of CSV and the store to a temporary folder and deletes them.

Run: ``.venv/bin/python -m benchmarks.bench_ticks_month [--quick]`` (--quick: 2 days per symbol).
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks._util import quick_parser

START_MS = 1_722_470_400_000  # 2024-08-01 00:00 UTC
DAY_MS = 86_400_000
RATES = {"ETHUSDT": 12.0, "BTCUSDT": 12.5}  # trades per second, month average
PRICES = {"ETHUSDT": 2_600.0, "BTCUSDT": 60_000.0}
GIB = 1 << 30


def write_month(path: Path, symbol: str, days: int, seed: int) -> int:
    """Write ``days`` days of synthetic trades to ``path``, a day at a time; return the row count."""
    rng = np.random.default_rng(seed)
    price, next_id, rows = PRICES[symbol], 0, 0
    with path.open("wb") as fh:
        for day in range(days):
            n = int(rng.poisson(RATES[symbol] * DAY_MS / 1000))
            t_ms = START_MS + day * DAY_MS + np.sort(rng.integers(0, DAY_MS, n))
            steps = rng.normal(0.0, 2e-5, n)
            px = np.round(price * np.exp(np.cumsum(steps)), 2)
            price = float(px[-1])
            qty = np.round(rng.lognormal(-3.0, 1.5, n), 4) + 1e-4
            pl.DataFrame(
                {
                    "id": np.arange(next_id, next_id + n, dtype=np.int64),
                    "price": px,
                    "qty": qty,
                    "quote_qty": np.round(px * qty, 6),
                    "time": t_ms,
                    "is_buyer_maker": rng.random(n) < 0.5,
                    "is_best_match": np.ones(n, dtype=bool),
                }
            ).write_csv(fh, include_header=False)
            next_id += n
            rows += n
    return rows


def child(path: str, store: str) -> None:
    """Import and resample one file; print timings and the peak RSS as JSON on the last line."""
    from rltrade.data.pipeline import import_to_store, resample_in_store
    from rltrade.data.store import Store
    from rltrade.types import Timeframe

    target = Store(Path(store))
    t0 = time.perf_counter()
    summary, _ = import_to_store([Path(path)], target, exchange="binance")
    t1 = time.perf_counter()
    symbol = Path(path).name.split("-")[0]
    bars, _ = resample_in_store(target, exchange="binance", symbol=symbol, src=None, dst=Timeframe.S1)
    t2 = time.perf_counter()
    (trades,) = summary.appended.values()
    (made,) = bars.appended.values()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = {"rows": trades.rows_new, "bars": made.rows_new, "import_s": t1 - t0, "resample_s": t2 - t1, "peak": peak}
    print(json.dumps(out))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    args = quick_parser(__doc__ or "").parse_args()
    days = 2 if args.quick else 30
    scratch = Path(tempfile.mkdtemp(prefix="bench_ticks_month_"))
    worst = 0
    try:
        for i, symbol in enumerate(RATES):
            path = scratch / f"{symbol}-trades-2024-08.csv"
            t0 = time.perf_counter()
            rows = write_month(path, symbol, days, seed=i)
            size = path.stat().st_size
            print(
                f"{symbol}: {rows:,} trades over {days} days, {size / GIB:.2f} GiB of CSV (written in "
                f"{time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
            run = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_ticks_month", "--child", str(path), str(scratch / "store")],
                capture_output=True,
                text=True,
                check=False,
            )
            if run.returncode:
                raise SystemExit(f"child failed ({run.returncode}):\n{run.stderr[-3000:]}")
            res = json.loads(run.stdout.strip().splitlines()[-1])
            assert res["rows"] == rows, f"imported {res['rows']:,} of {rows:,} trades"
            whole = size + rows * 8 * 6  # the CSV bytes plus a six-column 8-byte frame, held at once
            worst = max(worst, res["peak"])
            print(
                f"  import (streamed)   {res['import_s']:7.1f} s  {rows / res['import_s']:12,.0f} trades/s\n"
                f"  resample to 1s      {res['resample_s']:7.1f} s  {res['bars']:,} bars\n"
                f"  peak RSS {res['peak'] / GIB:.2f} GiB (the whole file and its frame at once: {whole / GIB:.2f} GiB)",
                flush=True,
            )
            path.unlink()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    verdict = "under" if worst < 4 * GIB else "OVER"
    print(f"peak RSS over both symbols: {worst / GIB:.2f} GiB, {verdict} the 4 GiB target")


if __name__ == "__main__":
    main()
