"""Reduce long series to what a chart can show without hiding what matters.

* :func:`minmax_indices`: which points of a long line to draw. The ``T`` points are cut into equal
  buckets of consecutive points; each bucket keeps the index of its minimum and of its maximum, and the
  first and last points are always kept. A drawdown's trough, an equity peak or a loss spike therefore
  survives at any zoom-out, which plain striding (every k-th point) does not guarantee.
* :func:`choose_bar_us` / :func:`resample_ohlc`: candles of a bar size from a fixed ladder of round sizes
  (1 s, 5 s, …, 1 d), the smallest that keeps the candle count within the cap; coarser candles are
  aggregated from the finer ones (first open, highest high, lowest low, last close), buckets aligned to
  multiples of the bar size since the epoch (UTC midnight for 1 d).
* :func:`largest_abs_indices`: which of many trades to mark (the largest |PnL|, in time order).
* :func:`label_runs`: runs of equal labels (regime shading draws one rectangle per run).

All of it is vectorised numpy; nothing here looks at what the values mean.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from rltrade.types import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE, US_PER_SECOND

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

BAR_LADDER_US: Final = (
    US_PER_SECOND,
    5 * US_PER_SECOND,
    10 * US_PER_SECOND,
    15 * US_PER_SECOND,
    30 * US_PER_SECOND,
    US_PER_MINUTE,
    5 * US_PER_MINUTE,
    15 * US_PER_MINUTE,
    30 * US_PER_MINUTE,
    US_PER_HOUR,
    2 * US_PER_HOUR,
    4 * US_PER_HOUR,
    6 * US_PER_HOUR,
    12 * US_PER_HOUR,
    US_PER_DAY,
)
"""Candle sizes a report may use, finest first."""


def minmax_indices(y_T: npt.ArrayLike, max_points: int) -> I64:
    """Sorted indices of at most ``max_points`` points of ``y_T`` that keep every bucket's extremes.

    With ``T <= max_points`` every index is returned. Otherwise the points are cut into
    ``(max_points - 2) // 2`` buckets of ``ceil(T / buckets)`` consecutive points (the last one may be
    shorter); each contributes the index of its minimum and of its maximum (the first occurrence on
    ties), plus indices ``0`` and ``T - 1``. NaN values are never picked as an extreme unless a bucket
    holds nothing else.
    """
    y = np.asarray(y_T, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"minmax_indices needs a 1-D series, got shape {y.shape}")
    if max_points < 4:
        raise ValueError(f"max_points must be at least 4 (first, last and one min/max pair), got {max_points}")
    n = y.shape[0]
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    buckets = (max_points - 2) // 2
    size = -(-n // buckets)
    rows = -(-n // size)
    low = np.full(rows * size, np.inf)
    high = np.full(rows * size, -np.inf)
    finite = ~np.isnan(y)
    low[:n] = np.where(finite, y, np.inf)
    high[:n] = np.where(finite, y, -np.inf)
    offsets = np.arange(rows, dtype=np.int64) * size
    i_min = offsets + np.argmin(low.reshape(rows, size), axis=1)
    i_max = offsets + np.argmax(high.reshape(rows, size), axis=1)
    keep = np.concatenate([[0, n - 1], i_min, i_max])
    return np.unique(keep).astype(np.int64)


def choose_bar_us(span_us: int, base_us: int, max_bars: int) -> int:
    """Find the smallest ladder size (a multiple of ``base_us``) giving at most ``max_bars`` bars over ``span_us``.

    Beyond the ladder, whole days: ``ceil(span / max_bars)`` rounded up to a day.
    """
    if span_us <= 0 or base_us <= 0 or max_bars < 1:
        raise ValueError(f"need span_us > 0, base_us > 0 and max_bars >= 1, got {span_us}, {base_us}, {max_bars}")
    for size in BAR_LADDER_US:
        if size >= base_us and size % base_us == 0 and -(-span_us // size) <= max_bars:
            return size
    days = -(-span_us // (max_bars * US_PER_DAY))
    return max(days, 1) * US_PER_DAY


class Ohlc(NamedTuple):
    """Candles: open time and prices per bar, in time order."""

    open_us_K: I64
    open_K: F64
    high_K: F64
    low_K: F64
    close_K: F64


def resample_ohlc(
    open_us_T: npt.ArrayLike,
    open_T: npt.ArrayLike,
    high_T: npt.ArrayLike,
    low_T: npt.ArrayLike,
    close_T: npt.ArrayLike,
    bar_us: int,
) -> Ohlc:
    """Aggregate sorted bars into ``bar_us`` candles (buckets ``open_us // bar_us``); empty buckets are absent.

    A candle's open is its first bar's open, its close its last bar's close, its high / low the extremes
    of its bars; its open time is the bucket start.
    """
    opens = np.asarray(open_us_T, dtype=np.int64)
    if opens.ndim != 1 or (opens.size and np.any(np.diff(opens) <= 0)):
        raise ValueError("resample_ohlc needs 1-D bar open times in strictly increasing order")
    if bar_us <= 0:
        raise ValueError(f"bar_us must be positive, got {bar_us}")
    o, h, lo, c = (np.asarray(a, dtype=np.float64) for a in (open_T, high_T, low_T, close_T))
    if not o.shape == h.shape == lo.shape == c.shape == opens.shape:
        raise ValueError(f"bar arrays differ in shape: {opens.shape}, {o.shape}, {h.shape}, {lo.shape}, {c.shape}")
    if opens.size == 0:
        empty = np.empty(0)
        return Ohlc(np.empty(0, np.int64), empty, empty, empty, empty)
    bucket = opens // bar_us
    starts = np.flatnonzero(np.concatenate([[True], bucket[1:] != bucket[:-1]]))
    ends = np.concatenate([starts[1:], [opens.size]]) - 1
    return Ohlc(
        bucket[starts] * bar_us,
        o[starts],
        np.maximum.reduceat(h, starts),
        np.minimum.reduceat(lo, starts),
        c[ends],
    )


def largest_abs_indices(values_N: npt.ArrayLike, k: int) -> I64:
    """Return the indices of the ``k`` values largest in absolute value (all when there are at most ``k``), sorted."""
    v = np.abs(np.asarray(values_N, dtype=np.float64))
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if v.shape[0] <= k:
        return np.arange(v.shape[0], dtype=np.int64)
    # NaN PnL never outranks a real one
    top = np.argpartition(np.nan_to_num(v, nan=-1.0), v.shape[0] - k)[v.shape[0] - k :]
    return np.sort(top).astype(np.int64)


class Runs(NamedTuple):
    """Maximal runs of equal labels: ``label_R[r]`` holds on rows ``start_R[r] .. stop_R[r] - 1``."""

    start_R: I64
    stop_R: I64
    label_R: npt.NDArray[np.int64]


def label_runs(labels_K: npt.ArrayLike) -> Runs:
    """Cut a label sequence into maximal runs of equal consecutive labels."""
    x = np.asarray(labels_K).astype(np.int64)
    if x.ndim != 1:
        raise ValueError(f"label_runs needs a 1-D sequence, got shape {x.shape}")
    if x.size == 0:
        empty = np.empty(0, np.int64)
        return Runs(empty, empty, empty)
    start = np.flatnonzero(np.concatenate([[True], x[1:] != x[:-1]]))
    stop = np.concatenate([start[1:], [x.size]])
    return Runs(start.astype(np.int64), stop.astype(np.int64), x[start])
