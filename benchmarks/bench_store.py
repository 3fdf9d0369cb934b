"""Eight years of 1h bars into the store: partitions sized to the timeframe vs the old one-file-per-day layout.

Input: the real ``binance_spot_{ETH,BTC}USDT_1h_2018-01-01_2026-05-16.csv.gz`` (73,265 bars each), imported
once before timing. Ours: ``Store.append`` of both symbols into a fresh store (a file per month, one
transaction, manifests committed with ``os.replace``). Baseline: the layout-1 writer kept below, the store as
it was before the change: every UTC day merged with what the day holds and written to its own file with the
same ``atomic_write`` (temporary file, fsync, ``os.replace``, folder fsync). Both fsync every committed file,
so the durability is the same; the ratio is what the file count costs. Skips when the real data is absent.

Run: ``.venv/bin/python -m benchmarks.bench_store [--quick] [--repeats N]`` (--quick: the last year only).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import polars as pl

from benchmarks._util import quick_parser, report_ratio, time_interleaved
from rltrade.data.atomic import atomic_write
from rltrade.data.importers import import_file
from rltrade.data.store import DatasetKey, Store
from rltrade.types import US_PER_DAY, Kind, Timeframe

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"
FILES = {
    "ETHUSDT": "binance_spot_ETHUSDT_1h_2018-01-01_2026-05-16.csv.gz",
    "BTCUSDT": "binance_spot_BTCUSDT_1h_2018-01-01_2026-05-16.csv.gz",
}


def legacy_append(root: Path, key: DatasetKey, frame: pl.DataFrame) -> int:
    """Layout 1 (the baseline): ``date=YYYY-MM-DD/part.parquet`` per day, merged and atomically rewritten."""
    frame = frame.with_columns((pl.col(key.time_col) // US_PER_DAY).alias("_day"))
    files = 0
    for (day_idx,), part in frame.group_by(["_day"], maintain_order=True):
        day = (pl.Series([int(day_idx) * US_PER_DAY]).cast(pl.Datetime("us")).dt.date())[0]
        path = key.folder(root) / f"date={day.isoformat()}" / "part.parquet"
        old = pl.read_parquet(path) if path.exists() else pl.DataFrame(schema=key.schema)
        merged = pl.concat([old, part.drop("_day")]).unique(maintain_order=True).sort(key.time_col)
        if merged.height == old.height:
            continue
        atomic_write(path, lambda fh, m=merged: m.write_parquet(fh, compression="zstd", statistics=True))
        files += 1
    return files


def main() -> None:
    args = quick_parser(__doc__ or "").parse_args()
    paths = {sym: REAL / name for sym, name in FILES.items()}
    if not all(p.is_file() for p in paths.values()):
        print(f"bench_store skipped: real data absent ({REAL})")
        return
    frames = {sym: import_file(p).frame for sym, p in paths.items()}
    if args.quick:
        frames = {sym: f.tail(24 * 365) for sym, f in frames.items()}
    keys = {sym: DatasetKey("binance", sym, Kind.BARS, Timeframe.H1) for sym in frames}
    rows = sum(f.height for f in frames.values())
    repeats = max(3, args.repeats)
    scratch = Path(tempfile.mkdtemp(prefix="bench_store_"))
    counter = iter(range(10**6))

    def fresh() -> Path:
        root = scratch / str(next(counter))
        root.mkdir()
        return root

    def ours() -> int:
        store = Store(fresh())
        with store.transaction() as tx:
            return sum(tx.append(keys[s], frames[s]).days_written for s in frames)

    def legacy() -> int:
        root = fresh()
        return sum(legacy_append(root, keys[s], frames[s]) for s in frames)

    try:
        (t_ours, t_legacy), results = time_interleaved(
            {"month files": ours, "day files (old)": legacy}, repeats=repeats
        )
        check = Store(fresh())
        for s in frames:
            check.append(keys[s], frames[s])
            assert check.read(keys[s]).equals(frames[s].sort("open_us")), "the store must read back what went in"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"{rows:,} 1h bars ({len(frames)} symbols, {rows // len(frames) / 24 / 365.25:.1f} years each) into a fresh "
        f"store: {results['month files']} files vs {results['day files (old)']} files, every one fsynced"
    )
    report_ratio(t_ours, t_legacy, items=rows, unit="bars")


if __name__ == "__main__":
    main()
