"""freqtrade's data files (``user_data/data/<exchange>/``) to rltrade frames.

File names say what a file holds (freqtrade's own naming)::

    ETH_USDT-1m.feather                      spot candles, 1m
    futures/ETH_USDT_USDT-1h-futures.feather  USDⓈ-M perpetual candles (settle currency after the pair)
    futures/ETH_USDT_USDT-8h-funding_rate.feather   funding rates (the rate is in the ``open`` column)
    futures/ETH_USDT_USDT-1h-mark.feather     mark / index / premiumIndex candles: skipped and counted
    ETH_USDT-trades.feather                   trades (futures: ``ETH_USDT_USDT-trades.feather``)

Formats: ``.feather``, ``.parquet`` (candles: ``date`` UTC datetime, ``open, high, low, close, volume``;
trades: ``timestamp`` ms, ``id, type, side, price, amount, cost``), ``.json`` and ``.json.gz`` /
``.jsongz`` (candles: a list of ``[ms, open, high, low, close, volume]``; trades: lists in the trades
column order). freqtrade writes no quote volume, trade count or taker volume: those stay null.

Timeframes: a 1s, 1m, 1h or 1d file becomes bars of that timeframe, as they are, plus the coarser wanted
timeframes it is asked to ``derive`` (the import job asks the finest file of a symbol and market for those
no imported file holds: a folder of 1m files alone gives 1m, 1h and 1d bars). Any other spacing (5m,
15m, 4h, 1w, …) is resampled to every wanted timeframe that is a whole multiple of it and coarser —
a 5m file gives 1h and 1d bars, never 1m or 1s ones, which would have to be invented. Coarse bars missing
any source bar are dropped and counted (:func:`rltrade.data.resample.resample_bars_with_report`).

Trades: ``side`` is the taker's (``buy`` → +1, ``sell`` → -1); ids must be integers. freqtrade fetches
Binance trades through ccxt's default, the aggregated-trades endpoint, so they are stored as ``is_agg``.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import polars as pl

from rltrade.data.cleaning import CleaningReport, FileFormatError, clean_bars, clean_trades
from rltrade.data.resample import ResampleReport, resample_bars_with_report
from rltrade.types import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE, US_PER_SECOND, Timeframe

FileRole = Literal["bars", "trades", "funding", "skipped"]

_NAME: Final = re.compile(
    r"^(?P<base>[A-Za-z0-9]+)_(?P<quote>[A-Za-z0-9]+)(?:_(?P<settle>[A-Za-z0-9]+))?"
    r"-(?P<what>\d+[smhdwM]|trades)"
    r"(?:-(?P<candle>futures|mark|index|premiumIndex|funding_rate))?"
    r"\.(?P<ext>feather|parquet|json|json\.gz|jsongz)$"
)
_UNIT_US: Final = {"s": US_PER_SECOND, "m": US_PER_MINUTE, "h": US_PER_HOUR, "d": US_PER_DAY, "w": 7 * US_PER_DAY}
_SKIPPED: Final = frozenset({"mark", "index", "premiumIndex"})
_OHLCV: Final = ("open", "high", "low", "close", "volume")
_TRADE_COLS: Final = ("timestamp", "id", "type", "side", "price", "amount", "cost")


@dataclass(frozen=True)
class Spacing:
    """A freqtrade timeframe (``5m``, ``4h``, …): its name and length; a :class:`~rltrade.data.resample.BarGrid`."""

    value: str
    us: int

    @property
    def timeframe(self) -> Timeframe | None:
        """Return the rltrade timeframe of the same length, if there is one."""
        return next((tf for tf in Timeframe if tf.us == self.us), None)


@dataclass(frozen=True)
class FreqtradeFile:
    """What a freqtrade file name says."""

    path: Path
    symbol: str
    """Binance-style symbol: ``ETHUSDT``."""
    futures: bool
    role: FileRole
    candle: str
    """freqtrade's candle type: spot, futures, mark, index, premiumIndex, funding_rate (trades: trades)."""
    spacing: Spacing | None
    """Candle spacing (None for trades)."""
    fmt: str


def parse_name(path: Path) -> FreqtradeFile | None:
    """Tell what the freqtrade file ``path`` holds from its name; None when the name is not freqtrade's."""
    m = _NAME.match(path.name)
    if m is None:
        return None
    symbol = (m["base"] + m["quote"]).upper()
    candle = m["candle"] or ("trades" if m["what"] == "trades" else "spot")
    futures = m["settle"] is not None or candle not in ("spot", "trades")
    spacing = None
    if m["what"] != "trades":
        n, unit = int(m["what"][:-1]), m["what"][-1]
        spacing = Spacing(m["what"], n * (30 * US_PER_DAY if unit == "M" else _UNIT_US[unit]))
    role: FileRole
    if candle == "trades":
        role = "trades"
    elif candle == "funding_rate":
        role = "funding"
    elif candle in _SKIPPED:
        role = "skipped"
    else:
        role = "bars"
    fmt = "jsongz" if m["ext"] in ("json.gz", "jsongz") else m["ext"]
    return FreqtradeFile(path, symbol, futures, role, candle, spacing, fmt)


def find_files(paths: list[Path]) -> tuple[list[FreqtradeFile], list[Path]]:
    """Find freqtrade files among ``paths`` (folders searched recursively), and the other files found there."""
    found: list[FreqtradeFile] = []
    other: list[Path] = []
    for path in paths:
        candidates = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for p in candidates:
            info = parse_name(p)
            if info is None:
                other.append(p)
            else:
                found.append(info)
    return found, other


def _read_table(info: FreqtradeFile, columns: tuple[str, ...]) -> pl.DataFrame:
    path = info.path
    try:
        if info.fmt == "feather":
            return pl.read_ipc(path)
        if info.fmt == "parquet":
            return pl.read_parquet(path)
        raw = gzip.decompress(path.read_bytes()) if info.fmt == "jsongz" else path.read_bytes()
        rows = json.loads(raw)
    except (OSError, EOFError, ValueError, pl.exceptions.ComputeError) as err:
        raise FileFormatError(
            f"cannot read this {info.fmt} file ({type(err).__name__}: {str(err)[:200]})",
            file=str(path),
            hint="The file is damaged or not freqtrade's format: re-download it with freqtrade download-data",
        ) from err
    if not isinstance(rows, list) or any(not isinstance(r, list) or len(r) != len(columns) for r in rows[:1000]):
        raise FileFormatError(
            f"expected a JSON list of [{', '.join(columns)}] rows",
            file=str(path),
            hint="Re-download it with freqtrade download-data",
        )
    return pl.DataFrame(rows, schema=list(columns), orient="row", strict=False, infer_schema_length=None)


def _require(frame: pl.DataFrame, columns: tuple[str, ...], path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FileFormatError(
            f"missing column(s) {missing} (has {frame.columns})",
            file=str(path),
            hint="Expected freqtrade's columns; re-download it with freqtrade download-data",
        )


def _ms_to_us(frame: pl.DataFrame, column: str) -> pl.Expr:
    dtype = frame.schema[column]
    if isinstance(dtype, pl.Datetime):
        return pl.col(column).dt.epoch("us")
    return pl.col(column).cast(pl.Int64) * 1000


def read_candles(info: FreqtradeFile) -> pl.DataFrame:
    """Read a candles file as ``BAR_SCHEMA`` columns (µs open times; extras null; zero volume → filled)."""
    frame = _read_table(info, ("date", *_OHLCV))
    _require(frame, ("date", *_OHLCV), info.path)
    return frame.select(
        _ms_to_us(frame, "date").alias("open_us"),
        *(pl.col(c).cast(pl.Float64) for c in _OHLCV),
        pl.lit(None, pl.Float64).alias("quote_volume"),
        pl.lit(None, pl.Int64).alias("trade_count"),
        pl.lit(None, pl.Float64).alias("taker_buy_volume"),
        (pl.col("volume").cast(pl.Float64) == 0).fill_null(False).alias("is_filled"),
    )


def read_trades(info: FreqtradeFile) -> pl.DataFrame:
    """Read a trades file as ``TRADE_SCHEMA`` (taker side ±1, ``is_agg``), unsorted and not yet cleaned."""
    frame = _read_table(info, _TRADE_COLS)
    _require(frame, ("timestamp", "id", "side", "price", "amount"), info.path)
    ids = frame["id"].cast(pl.Int64, strict=False)
    if ids.null_count() > frame["id"].null_count():
        bad = frame["id"].filter(ids.is_null() & frame["id"].is_not_null())[0]
        raise FileFormatError(
            f"trade id {bad!r} is not an integer", file=str(info.path), column="id", hint="rltrade stores integer ids"
        )
    sides = frame["side"].cast(pl.String).str.to_lowercase()
    unknown = sides.is_not_null() & ~sides.is_in(["buy", "sell"])
    if unknown.any():
        raise FileFormatError(
            f"side {sides.filter(unknown)[0]!r} is neither buy nor sell",
            file=str(info.path),
            column="side",
            hint="Fix or re-download the file",
        )
    return frame.select(
        _ms_to_us(frame, "timestamp").alias("ts_us"),
        ids.alias("trade_id"),
        pl.col("price").cast(pl.Float64),
        pl.col("amount").cast(pl.Float64).alias("qty"),
        pl.when(sides == "buy").then(1).when(sides == "sell").then(-1).cast(pl.Int8).alias("side"),
        pl.lit(True).alias("is_agg"),
    )


def read_funding_rates(info: FreqtradeFile) -> pl.DataFrame:
    """Read a ``-funding_rate`` file as ``ts_us, funding_rate`` (freqtrade keeps the rate in ``open``), sorted."""
    candles = read_candles(info)
    return candles.select(pl.col("open_us").alias("ts_us"), pl.col("open").alias("funding_rate")).sort("ts_us")


@dataclass(frozen=True)
class BarsImport:
    """Bars from one candles file, per stored timeframe, with what cleaning and resampling did."""

    bars: dict[Timeframe, pl.DataFrame]
    cleaning: CleaningReport
    resampled: list[ResampleReport]
    unused: bool
    """True when no wanted timeframe can be made from this spacing (e.g. a 1w file)."""


def coarser(spacing: Spacing, wanted: tuple[Timeframe, ...]) -> tuple[Timeframe, ...]:
    """Return the ``wanted`` timeframes that bars of ``spacing`` can be resampled to (coarser whole multiples)."""
    return tuple(tf for tf in wanted if tf.us > spacing.us and tf.us % spacing.us == 0)


def import_candles(
    info: FreqtradeFile,
    wanted: tuple[Timeframe, ...],
    *,
    strict: bool = False,
    derive: tuple[Timeframe, ...] = (),
) -> BarsImport:
    """Read, clean and resample one candles file (module docstring).

    A file of an rltrade timeframe gives its own bars plus those of ``derive`` (coarser timeframes, complete
    bars only); any other spacing gives every coarser ``wanted`` timeframe.
    """
    assert info.spacing is not None
    spacing = info.spacing
    native = spacing.timeframe
    cleaned = clean_bars(
        read_candles(info), policy="strict" if strict else "repair", timeframe=native, sources=(str(info.path),)
    )
    out: dict[Timeframe, pl.DataFrame] = {}
    reports: list[ResampleReport] = []
    if native is not None:
        out[native] = cleaned.frame
        for tf in coarser(spacing, derive):
            bars, report = resample_bars_with_report(cleaned.frame, spacing, tf, complete_only=True)
            out[tf] = bars
            reports.append(report)
        return BarsImport(out, cleaned.report, reports, unused=False)
    for tf in wanted:
        if tf.us > spacing.us and tf.us % spacing.us == 0:
            bars, report = resample_bars_with_report(cleaned.frame, spacing, tf, complete_only=True)
            out[tf] = bars
            reports.append(report)
    return BarsImport(out, cleaned.report, reports, unused=not out)


def import_trades(info: FreqtradeFile, *, strict: bool = False) -> tuple[pl.DataFrame, CleaningReport]:
    """Read and clean one trades file."""
    cleaned = clean_trades(read_trades(info), policy="strict" if strict else "repair", sources=(str(info.path),))
    return cleaned.frame, cleaned.report
