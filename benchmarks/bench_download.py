"""A year of 1m klines for ETHUSDT and BTCUSDT through ``rltrade data download`` vs pandas reading the same CSVs.

Input: synthetic Binance archives (12 monthly zips per symbol, 12 kline columns, no header, ms times; 525,600
rows per symbol), generated once into a temporary folder laid out like ``data.binance.vision`` with a
``.CHECKSUM`` per zip, and served over HTTP from 127.0.0.1 by a threaded ``http.server``.

- ours: :func:`rltrade.data.download_job.download_to_store` into an empty store and an empty cache:
  concurrent downloads (8 in flight), SHA-256 of every zip checked against its ``.CHECKSUM``, each archive
  imported (layout sniffing, time-unit detection, every cleaning check) and appended to the Parquet store
  (durable, fsynced writes).
- baseline: ``pandas.read_csv`` of every zip straight from the folder (no HTTP, no checksum, no checks,
  nothing written), then ``pandas.concat``.

Each side runs in a fresh child process (so peak RSS, ``ru_maxrss``, is that side's own), interleaved,
``--repeats`` times; the medians and the ratio are printed. The baseline does a small fraction of the work,
so the ratio says what verification and a durable store cost over merely parsing.

Run: ``.venv/bin/python -m benchmarks.bench_download [--quick] [--repeats N]`` (``--quick``: one month).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import io
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from benchmarks._util import quick_parser
from rltrade.data.archives import DataSpec, Market
from rltrade.data.download_job import download_to_store
from rltrade.data.importers import FileKind
from rltrade.data.store import Store
from rltrade.types import Timeframe

SYMBOLS = ("ETHUSDT", "BTCUSDT")
START = dt.date(2023, 1, 1)
COLUMNS = [
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_asset_volume",
    "number_of_trades", "taker_buy_base_asset_volume", "taker_buy_quote_asset_volume", "ignore",
]  # fmt: skip


def _month_frame(first: dt.date, rng: np.random.Generator, base: float) -> pl.DataFrame:
    """One month of 1m klines in Binance's 12 columns (a seeded random walk)."""
    nxt = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    start_ms = int(dt.datetime(first.year, first.month, 1, tzinfo=dt.UTC).timestamp() * 1000)
    n = (nxt - first).days * 1440
    open_ms = start_ms + 60_000 * np.arange(n, dtype=np.int64)
    close = np.round(base * np.exp(np.cumsum(rng.normal(0, 5e-4, n))), 2)
    open_ = np.r_[close[0], close[:-1]]
    volume = np.round(rng.gamma(2.0, 3.0, n), 4)
    count = rng.integers(1, 500, n)
    return pl.DataFrame(
        {
            "open_time": open_ms,
            "open": open_,
            "high": np.maximum(open_, close) + 0.01,
            "low": np.minimum(open_, close) - 0.01,
            "close": close,
            "volume": volume,
            "close_time": open_ms + 59_999,
            "quote_asset_volume": np.round(volume * close, 4),
            "number_of_trades": count,
            "taker_buy_base_asset_volume": np.round(volume / 2, 4),
            "taker_buy_quote_asset_volume": np.round(volume * close / 2, 4),
            "ignore": np.zeros(n, dtype=np.int64),
        }
    )


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves the archive folder without logging every request."""

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing."""


def build_archives(root: Path, months: int) -> list[Path]:
    """Write ``months`` monthly 1m archives per symbol, with checksums, under ``root``; return the zips."""
    rng = np.random.default_rng(7)
    zips: list[Path] = []
    for symbol, base in zip(SYMBOLS, (2000.0, 30000.0), strict=True):
        folder = root / "data" / "spot" / "monthly" / "klines" / symbol / "1m"
        folder.mkdir(parents=True, exist_ok=True)
        first = START
        for _ in range(months):
            name = f"{symbol}-1m-{first:%Y-%m}"
            buf = io.BytesIO()
            _month_frame(first, rng, base).write_csv(buf, include_header=False)
            data = io.BytesIO()
            with zipfile.ZipFile(data, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(f"{name}.csv", buf.getvalue())
            path = folder / f"{name}.zip"
            path.write_bytes(data.getvalue())
            digest = hashlib.sha256(data.getvalue()).hexdigest()
            (folder / f"{name}.zip.CHECKSUM").write_text(f"{digest}  {name}.zip\n")
            zips.append(path)
            first = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return zips


def run_ours(base_url: str, months: int, work: Path) -> int:
    """The measured call: download, verify and import; returns the rows stored."""
    end = dt.date(START.year + (START.month - 1 + months) // 12, (START.month - 1 + months) % 12 + 1, 1)
    specs = [DataSpec(s, Market.SPOT, FileKind.KLINES, Timeframe.M1) for s in SYMBOLS]
    store = Store(work / "store")
    report = download_to_store(
        specs,
        START,
        end,
        store,
        base_url=base_url,
        cache_dir=work / "cache",
        concurrency=8,
        now_us=lambda: int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp() * 1e6),
    )
    if report.downloaded != len(SYMBOLS) * months:
        raise RuntimeError(f"expected {len(SYMBOLS) * months} downloads, got {report.downloaded}: {report.notes}")
    return sum(r.rows_new for r in report.summary.appended.values())


def run_pandas(zips: list[Path]) -> int:
    """The baseline: pandas reads every zip and concatenates; returns the rows read."""
    frame = pd.concat([pd.read_csv(p, header=None, names=COLUMNS) for p in zips], ignore_index=True)
    return len(frame)


def child(args: list[str]) -> None:
    """Run one side in this (fresh) process and print its seconds, rows and peak RSS as JSON."""
    side, spec = args[0], json.loads(args[1])
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    if side == "ours":
        rows = run_ours(spec["base_url"], spec["months"], Path(spec["work"]))
    else:
        rows = run_pandas([Path(p) for p in spec["zips"]])
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_mib": peak / 1024, "start_mib": rss0 / 1024}))


def _spawn(side: str, spec: dict[str, Any]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_download", "--child", side, json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = quick_parser(__doc__ or "")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # internal: run one side here
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    months = 1 if args.quick else 12
    repeats = max(3, args.repeats)
    with tempfile.TemporaryDirectory(prefix="bench_download_") as tmp:
        root = Path(tmp) / "archives"
        t0 = time.perf_counter()
        zips = build_archives(root, months)
        mib = sum(p.stat().st_size for p in zips) / 2**20
        print(f"{len(zips)} archives ({mib:.1f} MiB zipped) generated in {time.perf_counter() - t0:.1f} s")
        handler = functools.partial(_QuietHandler, directory=str(root))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base_url = f"http://127.0.0.1:{server.server_address[1]}"
        runs: dict[str, list[dict[str, float]]] = {"ours": [], "pandas": []}
        try:
            for i in range(repeats):
                work = Path(tmp) / f"work{i}"
                runs["ours"].append(_spawn("ours", {"base_url": base_url, "months": months, "work": str(work)}))
                runs["pandas"].append(_spawn("pandas", {"zips": [str(p) for p in zips]}))
        finally:
            server.shutdown()
            server.server_close()
    rows = int(runs["ours"][0]["rows"])
    if any(int(r["rows"]) != rows for side in runs.values() for r in side):
        raise RuntimeError(f"row counts differ: {runs}")
    names = {
        "ours": "rltrade data download (HTTP, SHA-256, import, store)",
        "pandas": "pandas read_csv + concat (local zips)",
    }
    medians = {}
    for side, results in runs.items():
        med = statistics.median(r["seconds"] for r in results)
        peak = statistics.median(r["peak_mib"] for r in results)
        start = statistics.median(r["start_mib"] for r in results)
        medians[side] = med
        print(
            f"  {names[side]:<54} median {med:7.2f} s over {len(results)}  {rows / med:12,.0f} rows/s  "
            f"peak RSS {peak:7.0f} MiB (after imports {start:.0f} MiB)"
        )
    print(f"  {rows:,} rows ({months} month(s) × {len(SYMBOLS)} symbols)")
    print(f"  ratio rltrade / pandas time: {medians['ours'] / medians['pandas']:.2f}x (pandas only parses)")


if __name__ == "__main__":
    main()
