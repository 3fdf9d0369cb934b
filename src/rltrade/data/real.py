"""The real Binance spot klines of ``shared/data/real``: where they are and how they are imported.

The folder (see its README) has a month of ETH/USDT and BTC/USDT 1m klines (2024-07-26 14:16 → 2024-08-25
14:23 UTC), years of 1h and 1d klines, and only 11 minutes of trades. :func:`import_real_klines` imports the
1m month whole, and of the 1h and 1d files only the bars that close by the 1m month's end (the files run to
2026), from ``HISTORY_DAYS`` before the month starts: the history the bar windows and their indicators
need. It is an explicit data step (the ``real`` training preset's, run by the CLI before training), never
part of training itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import polars as pl

from rltrade.config import DataConfig
from rltrade.data.importers import import_file
from rltrade.data.pipeline import StoreSummary
from rltrade.data.store import DatasetKey, Store
from rltrade.types import US_PER_DAY, Kind, Timeframe

REAL_DATA_DIR: Final = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "real"
"""The real-data folder: ``shared/data/real`` beside the repository this package is installed from
(``<repo>/src/rltrade/data/real.py`` → ``<repo>/../shared/data/real``), whatever the working directory.
``--real-data`` points elsewhere."""

REAL_FILES: Final[dict[Timeframe, dict[str, str]]] = {
    Timeframe.M1: {
        "ETHUSDT": "binance_spot_ETHUSDT_1m_2024-07-26_2024-08-25.csv.gz",
        "BTCUSDT": "binance_spot_BTCUSDT_1m_2024-07-26_2024-08-25.csv.gz",
    },
    Timeframe.H1: {
        "ETHUSDT": "binance_spot_ETHUSDT_1h_2018-01-01_2026-05-16.csv.gz",
        "BTCUSDT": "binance_spot_BTCUSDT_1h_2018-01-01_2026-05-16.csv.gz",
    },
    Timeframe.D1: {
        "ETHUSDT": "binance_spot_ETHUSDT_1d_2020-02-24_2025-11-22.csv.gz",
        "BTCUSDT": "binance_spot_BTCUSDT_1d_2020-02-24_2025-11-22.csv.gz",
    },
}
"""The files the preset imports, per timeframe and symbol."""

HISTORY_DAYS: Final[dict[Timeframe, int]] = {Timeframe.M1: 0, Timeframe.H1: 40, Timeframe.D1: 400}
"""Days of 1h / 1d bars kept before the 1m month starts: a 48-bar window plus the 300-bar rolling volume
median and the indicators' warm-up (960 hours ≥ 348; 400 days ≥ 348), not the whole history (one store
file per day)."""


class RealDataMissing(FileNotFoundError):
    """The real-data folder or one of its files is not where the ``real`` preset looks."""


def real_paths(real_dir: Path = REAL_DATA_DIR) -> dict[Timeframe, dict[str, Path]]:
    """Return the real files in ``real_dir``; :class:`RealDataMissing` names what is missing and what to do."""
    paths = {tf: {sym: real_dir / name for sym, name in by_sym.items()} for tf, by_sym in REAL_FILES.items()}
    missing = [p.name for by_sym in paths.values() for p in by_sym.values() if not p.is_file()]
    if missing:
        where = real_dir.resolve()
        raise RealDataMissing(
            f"the real preset needs the real Binance klines in {where}, but "
            + ("that folder does not exist" if not real_dir.is_dir() else f"it lacks {', '.join(missing)}")
            + ". Pass the folder with --real-data DIR (by default rltrade looks in shared/data/real beside "
            "its repository), or use the synthetic demo preset (--preset demo)."
        )
    return paths


def import_real_klines(data: DataConfig, real_dir: Path = REAL_DATA_DIR) -> StoreSummary:
    """Import the real klines into ``data.store`` (idempotent: a second call appends nothing).

    1h and 1d bars are kept from ``HISTORY_DAYS`` before the 1m month's first bar up to the last one that
    closes by the 1m month's end; the 1m month is kept whole.
    """
    paths = real_paths(real_dir)
    store = Store(data.store)
    symbols = (data.symbol, data.reference)
    m1 = {
        sym: import_file(paths[Timeframe.M1][sym], policy="strict").frame
        for sym in symbols
        if sym in REAL_FILES[Timeframe.M1]
    }
    if len(m1) != len(symbols):
        raise RealDataMissing(
            f"the real preset has data for {', '.join(REAL_FILES[Timeframe.M1])} only, not {', '.join(symbols)}; "
            "set data.symbol / data.reference back to ETHUSDT / BTCUSDT"
        )
    start_us = min(int(df.item(0, "open_us")) for df in m1.values())
    end_us = min(int(df.item(-1, "open_us")) for df in m1.values()) + Timeframe.M1.us
    summary = StoreSummary()
    for tf in data.timeframes:
        if tf not in REAL_FILES:
            raise RealDataMissing(f"the real data has no {tf.value} bars; use data.timeframes [1m, 1h, 1d]")
        for sym in symbols:
            frame = m1[sym] if tf is Timeframe.M1 else import_file(paths[tf][sym], policy="strict").frame
            first = start_us - HISTORY_DAYS[tf] * US_PER_DAY
            frame = frame.filter((pl.col("open_us") >= first) & (pl.col("open_us") + tf.us <= end_us))
            key = DatasetKey(data.exchange, sym, Kind.BARS, tf)
            summary.add(key, store.append(key, frame))
    summary.notes.append(f"real klines from {real_dir}, cut at the 1m month's end ({end_us} µs)")
    return summary


def import_real_hourly(data: DataConfig, real_dir: Path = REAL_DATA_DIR) -> StoreSummary:
    """Import the whole 1h files (2018-01-01 → 2026-05-16) into ``data.store``, with 1d bars resampled from them.

    The ``real-1h`` preset's data step (idempotent). The 1d files start in 2020, so every 1d bar is built from
    the same symbol's 1h file instead (:func:`rltrade.data.resample.resample_bars`, complete days only): one
    source per symbol, years of daily history from 2018 on.
    """
    from rltrade.data.resample import resample_bars

    paths = real_paths(real_dir)
    store = Store(data.store)
    symbols = (data.symbol, data.reference)
    unknown = [s for s in symbols if s not in REAL_FILES[Timeframe.H1]]
    if unknown:
        raise RealDataMissing(
            f"the real 1h data has {', '.join(REAL_FILES[Timeframe.H1])} only, not {', '.join(unknown)}; "
            "set data.symbol / data.reference back to ETHUSDT / BTCUSDT"
        )
    extra = [tf.value for tf in data.timeframes if tf not in (Timeframe.H1, Timeframe.D1)]
    if extra:
        raise RealDataMissing(f"the real 1h data has no {', '.join(extra)} bars; use data.timeframes [1h, 1d]")
    summary = StoreSummary()
    for sym in symbols:
        hourly = import_file(paths[Timeframe.H1][sym], policy="strict").frame
        for tf in data.timeframes:
            frame = hourly if tf is Timeframe.H1 else resample_bars(hourly, Timeframe.H1, Timeframe.D1)
            key = DatasetKey(data.exchange, sym, Kind.BARS, tf)
            summary.add(key, store.append(key, frame))
    summary.notes.append(f"real 1h klines from {real_dir}, 1d bars resampled from them")
    return summary
