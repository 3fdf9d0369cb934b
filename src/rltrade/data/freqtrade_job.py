"""``rltrade data import`` of freqtrade files and folders: bars and trades to the store, funding beside it.

Every freqtrade file found (see :mod:`rltrade.data.freqtrade`) is imported through the store's public
``append`` / ``transaction``, one file at a time and each file all or nothing: candles as bars
(resampled when their spacing is not an rltrade timeframe), trades as trades. A wanted timeframe that no
imported file of a symbol and market holds is resampled from that symbol's finest file of an rltrade
timeframe (:func:`derived_timeframes`): a freqtrade folder of 1m files gives 1h and 1d bars too. Spot files go to the
``exchange`` folder of the store, futures files to ``<exchange>usdm`` (``binanceusdm`` for Binance,
ccxt's id; ``rltrade data download --market um`` uses the same), so spot and perpetual prices never mix.

Funding rates are not a store dataset: rltrade reads funding from a file (``env.funding_file``, read by
:func:`rltrade.data.importers.read_funding`). They are merged into
``<store>/funding/exchange=<exchange>/<SYMBOL>.csv`` (the ``open_time,funding_rate`` layout, ms), written
atomically; a rate that disagrees with one already there is an error. Mark, index and premium-index
candles are skipped and counted, as are files in the folders that are not freqtrade's.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from rltrade.data.atomic import atomic_write
from rltrade.data.cleaning import CleaningReport, FileFormatError
from rltrade.data.freqtrade import (
    FreqtradeFile,
    find_files,
    import_candles,
    import_trades,
    read_funding_rates,
)
from rltrade.data.importers import read_funding
from rltrade.data.pipeline import Progress, StoreSummary
from rltrade.data.store import DatasetKey, Store
from rltrade.types import Kind, Timeframe

FUNDING_DIR = "funding"


def _noop(done: int, total: int, what: str) -> None:
    del done, total, what


@dataclass
class FreqtradeReport:
    """What one freqtrade import did, for the CLI to print."""

    summary: StoreSummary = field(default_factory=StoreSummary)
    cleaning: list[CleaningReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, list[Path]] = field(default_factory=dict)
    """Why → files: mark/index candles, files that are not freqtrade's, spacings no timeframe can use."""
    funding_files: list[Path] = field(default_factory=list)

    def skip(self, why: str, path: Path) -> None:
        """Count ``path`` as skipped for ``why``."""
        self.skipped.setdefault(why, []).append(path)


def futures_exchange(exchange: str) -> str:
    """Name the store folder of ``exchange``'s USDⓈ-M futures: ccxt's id (``binance`` → ``binanceusdm``)."""
    return f"{exchange}usdm"


def funding_path(store: Store, exchange: str, symbol: str) -> Path:
    """Locate the funding file of ``symbol`` on ``exchange`` in ``store``."""
    return store.root / FUNDING_DIR / f"exchange={exchange}" / f"{symbol}.csv"


def _merge_funding(path: Path, new: pl.DataFrame, source: Path) -> int:
    """Merge funding rows into ``path``; returns how many were new."""
    old = read_funding(path) if path.exists() else pl.DataFrame(schema={"ts_us": pl.Int64, "funding_rate": pl.Float64})
    both = pl.concat([old, new]).unique(maintain_order=True)
    clash = both.filter(pl.col("ts_us").is_duplicated())
    if clash.height:
        raise FileFormatError(
            f"{clash['ts_us'].n_unique()} funding time(s) disagree with {path}",
            file=str(source),
            hint="Delete the stored funding file if it is wrong, then import again",
        )
    merged = both.sort("ts_us")
    buf = io.StringIO()
    merged.select((pl.col("ts_us") // 1000).alias("open_time"), "funding_rate").write_csv(buf)
    data = buf.getvalue().encode()
    atomic_write(path, lambda fh: fh.write(data))
    return merged.height - old.height


def derived_timeframes(
    files: Sequence[FreqtradeFile], wanted: tuple[Timeframe, ...]
) -> dict[Path, tuple[Timeframe, ...]]:
    """Return, per candles file, the coarser ``wanted`` timeframes to resample from it.

    For each symbol and market (spot or futures), a wanted timeframe that no file holds as its own spacing
    is built from the files of the finest spacing that is an rltrade timeframe dividing it (several files of
    one spacing: several periods), and from no other spacing (two sources of the same bars could disagree).
    """
    spaced = [(f, f.spacing.us) for f in files if f.role == "bars" and f.spacing and f.spacing.timeframe]
    out: dict[Path, tuple[Timeframe, ...]] = {}
    for symbol, futures in sorted({(f.symbol, f.futures) for f, _ in spaced}):
        same = [(f, us) for f, us in spaced if (f.symbol, f.futures) == (symbol, futures)]
        for tf in wanted:
            if any(us == tf.us for _, us in same):
                continue
            sources = [(f, us) for f, us in same if us < tf.us and tf.us % us == 0]
            finest = min((us for _, us in sources), default=None)
            for f, us in sources:
                if us == finest:
                    out[f.path] = (*out.get(f.path, ()), tf)
    return out


def import_freqtrade(
    paths: Sequence[Path],
    store: Store,
    *,
    exchange: str,
    timeframes: tuple[Timeframe, ...],
    strict: bool = False,
    progress: Progress = _noop,
) -> FreqtradeReport:
    """Import freqtrade files and folders into ``store``; see the module docstring."""
    files, other = find_files(list(paths))
    report = FreqtradeReport()
    for p in other:
        report.skip("not a freqtrade data file name", p)
    if not files:
        raise FileFormatError(
            "no freqtrade data file found (names like ETH_USDT-1m.feather, ETH_USDT_USDT-1h-futures.feather)",
            file=", ".join(str(p) for p in paths),
            hint="Point at freqtrade's user_data/data/<exchange> folder, or import Binance dump files by name",
        )
    derive = derived_timeframes(files, timeframes)
    for i, info in enumerate(files):
        progress(i, len(files), f"import {info.path.name}")
        try:
            _import_one(
                info,
                store,
                report,
                exchange=exchange,
                timeframes=timeframes,
                strict=strict,
                derive=derive.get(info.path, ()),
            )
        except pl.exceptions.PolarsError as err:
            raise FileFormatError(
                f"unreadable ({type(err).__name__}: {str(err)[:200]})", file=str(info.path), hint="Re-download it"
            ) from err
    progress(len(files), len(files), "imported")
    return report


def _import_one(
    info: FreqtradeFile,
    store: Store,
    report: FreqtradeReport,
    *,
    exchange: str,
    timeframes: tuple[Timeframe, ...],
    strict: bool,
    derive: tuple[Timeframe, ...],
) -> None:
    ex = futures_exchange(exchange) if info.futures else exchange
    if info.role == "skipped":
        report.skip(f"{info.candle} candles (not traded prices)", info.path)
    elif info.role == "funding":
        path = funding_path(store, ex, info.symbol)
        added = _merge_funding(path, read_funding_rates(info), info.path)
        report.notes.append(f"{info.path.name}: {added:,} new funding rate(s) → {path} (set env.funding_file to it)")
        if path not in report.funding_files:
            report.funding_files.append(path)
    elif info.role == "trades":
        frame, cleaning = import_trades(info, strict=strict)
        key = DatasetKey(ex, info.symbol, Kind.TRADES)
        report.summary.add(key, store.append(key, frame))
        if not cleaning.is_clean:
            report.cleaning.append(cleaning)
    else:
        result = import_candles(info, timeframes, strict=strict, derive=derive)
        if result.unused:
            report.skip(
                f"{info.spacing.value if info.spacing else '?'} candles: no wanted timeframe "
                f"({', '.join(t.value for t in timeframes)}) is a whole multiple",
                info.path,
            )
            return
        with store.transaction() as tx:  # every timeframe made from this file, or none
            for tf, bars in result.bars.items():
                key = DatasetKey(ex, info.symbol, Kind.BARS, tf)
                report.summary.add(key, tx.append(key, bars))
        for rep in result.resampled:
            report.notes.append(f"{info.path.name}: resampled {rep.summary()}")
        if not result.cleaning.is_clean:
            report.cleaning.append(result.cleaning)
