"""Resampling: trades → bars, and bars → coarser bars (1s → 1m → 1h → 1d).

Bars follow Binance's kline convention, so that resampled bars equal the exchange's own klines:

* a bar is the half-open interval ``[open_us, open_us + tf.us)``; it holds the trades with
  ``open_us <= ts_us < open_us + tf.us`` and is visible only from ``open_us + tf.us`` (see ``align``);
* ``open`` is the first trade's price, ``close`` the last, in ``(ts_us, trade_id)`` order;
* an interval without a trade is an **explicit** bar: open = high = low = close = the previous close,
  volume 0, trade_count 0, ``is_filled=True``. No price movement is ever invented.

When bars are resampled to a coarser timeframe, filled source bars carry no information about prices
inside the coarser bar, so they are left out of its open/high/low: a 1m bar whose first 1s bar is empty
opens at the first *trade* of that minute, as Binance's 1m kline does. A coarser bar whose source bars
are all filled is itself filled (carried close).

Missing source bars (exchange outages, a series starting mid-hour) are never treated as present:
``resample_bars_with_report`` counts every incomplete output bar and every source bar it drops, and
``resample_bars`` logs that count.

How: ``trades_to_bars`` makes one compiled pass over the trades (``resample_kernel.reduce_trades``,
numba), checking each trade and updating its bar's every column, on chunks of about 65k rows cut
between bars and spread over a few threads (the kernel runs without the GIL); a bar never spans two
chunks, so the result is the same bit for bit whatever the thread count. ``resample_bars`` uses
``np.ufunc.reduceat`` over the contiguous runs of sorted source bars.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final, NamedTuple, Protocol

import numpy as np
import polars as pl

from rltrade.data.resample_kernel import reduce_trades
from rltrade.data.schema import BAR_SCHEMA, TRADE_SCHEMA, SchemaError, conform
from rltrade.types import Timeframe

logger = logging.getLogger(__name__)


class BarGrid(Protocol):
    """A source bar spacing: every :class:`~rltrade.types.Timeframe`, or another one (freqtrade's 5m, 4h …)."""

    @property
    def us(self) -> int:
        """Bar length in µs."""
        ...

    @property
    def value(self) -> str:
        """Name, e.g. ``5m``."""
        ...


class ResampleError(ValueError):
    """Input to a resampler is unusable as given (unsorted, off-grid, not computable causally, ...)."""


@dataclass(frozen=True)
class ResampleReport:
    """What ``resample_bars_with_report`` did with incomplete coarse bars. Nothing is dropped uncounted.

    A coarse bar is *incomplete* when some but not all of its ``dst.us // src.us`` source bars are
    present (an outage inside it, or the series starts or ends inside it). Coarse periods with no
    source bar at all are neither emitted nor counted as incomplete; they are counted in ``n_empty``.
    """

    src: BarGrid
    dst: Timeframe
    n_src: int
    """Source bars read."""
    n_out: int
    """Coarse bars emitted."""
    n_incomplete: int
    """Coarse bars with some, but not all, source bars present."""
    n_dropped: int
    """Incomplete coarse bars left out of the output (all of them with ``complete_only=True``, else 0)."""
    n_src_dropped: int
    """Source bars that fell inside dropped coarse bars and so contributed to no output bar."""
    n_src_missing: int
    """Source bars absent inside incomplete coarse bars (e.g. 5 missing hours in a day → 5)."""
    n_empty: int
    """Coarse periods between the first and last source bar with no source bar at all."""
    incomplete_open_us: np.ndarray = field(repr=False)
    """Open times of the incomplete coarse bars, ascending (int64)."""

    def summary(self) -> str:
        """Describe the resampling in one line: counts of source, output, incomplete, dropped and empty bars."""
        return (
            f"{self.src.value}→{self.dst.value}: {self.n_src} source bars → {self.n_out} bars; "
            f"{self.n_incomplete} incomplete ({self.n_src_missing} source bars missing), "
            f"{self.n_dropped} dropped ({self.n_src_dropped} source bars unused), "
            f"{self.n_empty} empty periods"
        )


def trades_to_bars(
    trades: pl.DataFrame,
    tf: Timeframe,
    *,
    start_us: int | None = None,
    end_us: int | None = None,
    prev_close: float | None = None,
    n_threads: int | None = None,
) -> pl.DataFrame:
    """Aggregate trades (TRADE_SCHEMA, sorted by ``(ts_us, trade_id)``) into bars (BAR_SCHEMA).

    Output rows are every bar from the one containing ``start_us`` (default: the first trade) to the
    one containing ``end_us - 1`` (default: the last trade), one per ``tf``, none skipped. Bars are
    always whole intervals: a ``start_us`` / ``end_us`` off the grid selects the bar containing it
    with all of its trades. Trades after the last bar are not used; trades before the first bar are
    used only to carry their close into leading empty bars.

    With ``tf=1s``, trades at 14:00:00.000, 14:00:00.700 and 14:00:02.100 give three bars: 14:00:00
    (two trades), 14:00:01 (filled: OHLC = close of 14:00:00, volume 0) and 14:00:02.

    A leading empty bar needs a close to carry. It is the last trade before the range, else
    ``prev_close``; when neither exists a ``ResampleError`` is raised rather than inventing a price
    (start the range at the first trade, or pass ``prev_close``).

    Columns: volume = Σ qty, quote_volume = Σ price·qty, trade_count, taker_buy_volume = Σ qty of
    trades whose aggressor bought (``side == +1``), is_filled = no trade in the bar.

    Every trade of the frame is checked (finite positive price and qty, side ±1, strictly sorted by
    ``(ts_us, trade_id)``); the first bad row is named in the error. Large inputs are reduced in
    chunks by ``n_threads`` threads (default: the available CPUs, at most 8, and 1 below ~260k
    trades); each bar is reduced whole by one thread, so the result does not depend on the count.
    """
    trades = conform(trades, TRADE_SCHEMA, what="trades")
    for name in ("ts_us", "trade_id", "price", "qty", "side"):
        if trades[name].null_count():
            row = int(trades[name].is_null().arg_max() or 0)
            raise SchemaError(f"trades: null {name} at row {row}; drop or repair the row before resampling")
    cols = _TradeArrays(*(trades[c].to_numpy() for c in ("ts_us", "trade_id", "price", "qty", "side")))
    n = len(cols.ts_N)
    if n == 0 and (start_us is None or end_us is None):
        if start_us is None and end_us is None:
            return pl.DataFrame(schema=BAR_SCHEMA)
        raise ResampleError("trades is empty: pass both start_us and end_us (and prev_close) or no range")
    tf_us = tf.us
    first_bar = (start_us if start_us is not None else int(cols.ts_N[0])) // tf_us
    last_bar = (end_us - 1 if end_us is not None else int(cols.ts_N[-1])) // tf_us
    if last_bar < first_bar:
        raise ResampleError(f"empty range: start_us={start_us} is not before end_us={end_us}")
    n_bars = last_bar - first_bar + 1
    lo, hi = (int(i) for i in np.searchsorted(cols.ts_N, [first_bar * tf_us, (last_bar + 1) * tf_us]))
    out = _BarColumns.empty(n_bars)

    def task(a: int, b: int) -> None:
        if reduce_trades(*cols, a, b, tf_us, first_bar, *out):
            _raise_first_bad_row(cols, a, b)

    # The chunk cuts assume sorted rows; every row is checked, and a bar outside the range is never written.
    if n_threads is not None and n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    _map_chunks(task, _chunks(cols.ts_N, lo, hi, tf_us), n_threads or _workers(n))
    seed_close = float(cols.price_N[lo - 1]) if lo > 0 else prev_close
    if seed_close is None and out.count_T[0] == 0:
        raise ResampleError(
            f"the first bar (open_us={first_bar * tf_us}) has no trade and no earlier trade or prev_close "
            "gives it a close; start the range at the first trade or pass prev_close"
        )
    # Empty bars carry the close of the latest bar with a trade (or the seed before the first one).
    filled = out.count_T == 0
    last_idx = np.maximum.accumulate(np.where(filled, -1, np.arange(n_bars)))[filled]
    seed = np.float64(seed_close) if seed_close is not None else np.nan
    carried = np.where(last_idx >= 0, out.close_T[last_idx], seed)
    for prices_T in (out.open_T, out.high_T, out.low_T, out.close_T):
        prices_T[filled] = carried
    return pl.DataFrame(
        {
            "open_us": (np.arange(n_bars, dtype=np.int64) + first_bar) * tf_us,
            "open": out.open_T,
            "high": out.high_T,
            "low": out.low_T,
            "close": out.close_T,
            "volume": out.volume_T,
            "quote_volume": out.quote_T,
            "trade_count": out.count_T,
            "taker_buy_volume": out.taker_T,
            "is_filled": filled,
        },
        schema=BAR_SCHEMA,
    )


class _TradeArrays(NamedTuple):
    ts_N: np.ndarray
    id_N: np.ndarray
    price_N: np.ndarray
    qty_N: np.ndarray
    side_N: np.ndarray


class _BarColumns(NamedTuple):
    open_T: np.ndarray
    high_T: np.ndarray
    low_T: np.ndarray
    close_T: np.ndarray
    volume_T: np.ndarray
    quote_T: np.ndarray
    taker_T: np.ndarray
    count_T: np.ndarray

    @classmethod
    def empty(cls, n_bars: int) -> _BarColumns:
        def prices() -> np.ndarray:
            return np.empty(n_bars)

        def sums() -> np.ndarray:
            return np.zeros(n_bars)

        return cls(prices(), prices(), prices(), prices(), sums(), sums(), sums(), np.zeros(n_bars, np.int64))


# Rows per task: the chunk and its temporaries stay in a core's L2 cache, so the passes after the
# first read cache, not RAM, and the per-task Python overhead (~20 numpy calls) stays negligible.
_CHUNK_ROWS: Final = 1 << 16
_MAX_WORKERS: Final = 8


def _workers(n_rows: int) -> int:
    if n_rows < 4 * _CHUNK_ROWS:
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(_MAX_WORKERS, cpus))


def _chunks(ts_N: np.ndarray, lo: int, hi: int, tf_us: int) -> list[tuple[int, int]]:
    """Split all rows into runs of about ``_CHUNK_ROWS``; inside [lo, hi) cut only between bars.

    ``lo`` and ``hi`` are always cuts, so a chunk lies wholly inside or wholly outside the range.
    """
    n = len(ts_N)
    cuts = np.arange(lo + _CHUNK_ROWS, hi, _CHUNK_ROWS)
    if len(cuts):
        # Move each cut forward to the first trade of the next bar, so no bar spans two chunks.
        cuts = np.searchsorted(ts_N, (ts_N[cuts - 1] // tf_us + 1) * tf_us, side="left")
    outside = np.r_[np.arange(0, lo, _CHUNK_ROWS), np.arange(hi, n, _CHUNK_ROWS)]
    bounds = np.unique(np.clip(np.r_[0, lo, hi, n, outside, cuts], 0, n))
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


def _map_chunks(task: Callable[[int, int], None], chunks: list[tuple[int, int]], workers: int) -> None:
    """Run ``task(a, b)`` on each chunk; the compiled kernel releases the GIL, so threads overlap.

    Exceptions surface in chunk order, so the first bad row is the one reported.
    """
    if workers == 1 or len(chunks) < 2:
        for a, b in chunks:
            task(a, b)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(task, *zip(*chunks, strict=True)):
            pass


def _first_out_of_order(ts: np.ndarray, ids: np.ndarray) -> int:
    """Index i >= 1 of the first row not after row i-1 in (ts_us, trade_id) order, or -1."""
    bad = (ts[1:] < ts[:-1]) | ((ts[1:] == ts[:-1]) & (ids[1:] <= ids[:-1]))
    return int(np.argmax(bad)) + 1 if bad.any() else -1


def _raise_first_bad_row(cols: _TradeArrays, a: int, b: int) -> None:
    """Find the first row of [a, b) breaking any rule and raise an error naming it and the rule."""
    price, qty, side = cols.price_N[a:b], cols.qty_N[a:b], cols.side_N[a:b]
    a0 = max(a - 1, 0)
    i = _first_out_of_order(cols.ts_N[a0:b], cols.id_N[a0:b])
    candidates = {
        "price": ~(np.isfinite(price) & (price > 0)),
        "qty": ~(np.isfinite(qty) & (qty > 0)),
        "side": (side != 1) & (side != -1),
        "order": np.zeros(b - a, dtype=bool),
    }
    if i >= 0:
        candidates["order"][a0 + i - a] = True
    found = [(a + int(np.argmax(m)), k) for k, m in candidates.items() if m.any()]
    if not found:  # every value is valid, yet the volume of some bar overflowed to inf
        raise ResampleError(f"trades: rows {a}..{b - 1} sum to a non-finite volume; check the qty units")
    row, rule = min(found)
    if rule == "order":
        ts, ids = cols.ts_N, cols.id_N
        raise ResampleError(
            f"trades: row {row} (ts_us={ts[row]}, trade_id={ids[row]}) is not after row {row - 1} "
            f"(ts_us={ts[row - 1]}, trade_id={ids[row - 1]}); trades must be sorted by (ts_us, trade_id) "
            "without duplicates: use df.unique(['ts_us', 'trade_id']).sort('ts_us', 'trade_id')"
        )
    if rule == "side":
        raise ResampleError(f"trades: row {row} has side={int(side[row - a])}; side must be +1 (buy) or -1 (sell)")
    value = float((price if rule == "price" else qty)[row - a])
    raise ResampleError(f"trades: row {row} has {rule}={value!r}; it must be finite and > 0")


def resample_bars(bars: pl.DataFrame, src: Timeframe, dst: Timeframe, *, complete_only: bool = True) -> pl.DataFrame:
    """``resample_bars_with_report`` without the report, which is logged (WARNING when bars were dropped)."""
    out, report = resample_bars_with_report(bars, src, dst, complete_only=complete_only)
    level = logging.WARNING if report.n_dropped else logging.INFO
    logger.log(level, "resample %s", report.summary())
    return out


def resample_bars_with_report(
    bars: pl.DataFrame, src: BarGrid, dst: Timeframe, *, complete_only: bool = True
) -> tuple[pl.DataFrame, ResampleReport]:
    """Aggregate ``src`` bars (BAR_SCHEMA, sorted, unique, on the ``src`` grid) into ``dst`` bars.

    The ``dst`` bar opened at ``T`` aggregates the source bars with ``T <= open_us < T + dst.us``; e.g.
    the 1h bar of 14:00 is the 60 1m bars 14:00 … 14:59 and is visible from 15:00.

    * open / high / low: first / max / min over the source bars that had trades (not filled); close:
      the last source bar's close. If every source bar is filled, OHLC is the carried close and the
      bar is filled (``is_filled`` is True only if all its source bars are).
    * volume, quote_volume, trade_count, taker_buy_volume: sums; null if any source value is null
      (an unknown part makes the total unknown).
    * ``complete_only=True`` drops coarse bars missing any source bar; ``False`` keeps them,
      aggregated over the bars present. Either way the report counts them (``ResampleReport``).
    """
    if dst.us <= src.us or dst.us % src.us:
        raise ResampleError(f"cannot resample {src.value} → {dst.value}: dst must be a multiple of src")
    bars = conform(bars, BAR_SCHEMA, what=f"{src.value} bars")
    _check_bars(bars, src)
    per_bar = dst.us // src.us
    open_us_T = bars["open_us"].to_numpy()
    dst_key_T = open_us_T // dst.us
    # Sorted bars: each coarse bar is one contiguous run of source bars, reduced by reduceat. Each
    # sum then depends only on its own source values, bit for bit, whatever else is in the frame.
    starts = np.flatnonzero(np.r_[True, dst_key_T[1:] != dst_key_T[:-1]]) if len(dst_key_T) else dst_key_T
    n_T = np.diff(np.r_[starts, len(dst_key_T)])
    dst_T = dst_key_T[starts] * dst.us
    grouped = _reduce_runs(bars, starts, n_T).with_columns(pl.Series("open_us", dst_T))
    incomplete = n_T < per_bar
    n_periods = int((dst_T[-1] - dst_T[0]) // dst.us + 1) if len(dst_T) else 0
    out = grouped.filter(pl.Series(~incomplete)) if complete_only else grouped
    report = ResampleReport(
        src=src,
        dst=dst,
        n_src=bars.height,
        n_out=out.height,
        n_incomplete=int(incomplete.sum()),
        n_dropped=int(incomplete.sum()) if complete_only else 0,
        n_src_dropped=int(n_T[incomplete].sum()) if complete_only else 0,
        n_src_missing=int((per_bar - n_T[incomplete]).sum()),
        n_empty=n_periods - len(dst_T),
        incomplete_open_us=dst_T[incomplete],
    )
    return out.select(list(BAR_SCHEMA)), report


def _reduce_runs(bars: pl.DataFrame, starts: np.ndarray, n_T: np.ndarray) -> pl.DataFrame:
    """Reduce each run ``bars[starts[i] : starts[i] + n_T[i]]`` to one coarse bar (all columns but open_us)."""
    if len(starts) == 0:
        return pl.DataFrame(schema=BAR_SCHEMA).drop("open_us")
    last = starts + n_T - 1
    traded_T = ~bars["is_filled"].to_numpy()
    close_T = bars["close"].to_numpy()[last]
    # Filled source bars carry an old close: mask them out of open/high/low; a run with no traded bar
    # is itself filled and carries its close.
    high_T = np.maximum.reduceat(np.where(traded_T, bars["high"].to_numpy(), -np.inf), starts)
    low_T = np.minimum.reduceat(np.where(traded_T, bars["low"].to_numpy(), np.inf), starts)
    position_T = np.arange(len(traded_T))
    next_traded_T = np.minimum.accumulate(np.where(traded_T, position_T, len(traded_T))[::-1])[::-1]
    first_traded = next_traded_T[starts]
    any_traded = first_traded <= last
    out: dict[str, pl.Series] = {
        "open": pl.Series(np.where(any_traded, bars["open"].to_numpy()[np.minimum(first_traded, last)], close_T)),
        "high": pl.Series(np.where(any_traded, high_T, close_T)),
        "low": pl.Series(np.where(any_traded, low_T, close_T)),
        "close": pl.Series(close_T),
    }
    for name in ("volume", "quote_volume", "trade_count", "taker_buy_volume"):
        column = bars[name]
        total = np.add.reduceat(column.fill_null(0).to_numpy(), starts)
        series = pl.Series(name, total, dtype=BAR_SCHEMA[name])
        if column.null_count():
            unknown = np.maximum.reduceat(column.is_null().to_numpy().astype(np.int8), starts) > 0
            series = series.scatter(np.flatnonzero(unknown), None)
        out[name] = series
    out["is_filled"] = pl.Series(~any_traded)
    return pl.DataFrame([series.alias(name) for name, series in out.items()])


def _check_bars(bars: pl.DataFrame, tf: BarGrid) -> None:
    """Reject bars that are unsorted, duplicated, off the ``tf`` grid, or with null prices/flags."""
    for name in ("open_us", "open", "high", "low", "close", "is_filled"):
        if bars[name].null_count():
            row = int(bars[name].is_null().arg_max() or 0)
            raise SchemaError(f"{tf.value} bars: null {name} at row {row}; repair or drop the row first")
    prices = bars.select("open", "high", "low", "close").to_numpy()
    if not np.isfinite(prices).all():
        row, col = (int(i[0]) for i in np.nonzero(~np.isfinite(prices)))
        name = ("open", "high", "low", "close")[col]
        raise ResampleError(f"{tf.value} bars: row {row} has {name}={prices[row, col]}; prices must be finite")
    open_us_T = bars["open_us"].to_numpy()
    off_grid = open_us_T % tf.us != 0
    if off_grid.any():
        row = int(np.argmax(off_grid))
        raise ResampleError(
            f"{tf.value} bars: row {row} open_us={open_us_T[row]} is not a multiple of {tf.us} µs; "
            f"are these {tf.value} bars, in µs?"
        )
    not_after = np.diff(open_us_T) <= 0
    if not_after.any():
        row = int(np.argmax(not_after)) + 1
        raise ResampleError(
            f"{tf.value} bars: row {row} open_us={open_us_T[row]} is not after row {row - 1} "
            f"(open_us={open_us_T[row - 1]}); bars must be sorted by open_us without duplicates"
        )
