"""Naive pivot oracle: plain Python loops written straight from the definition, no vectorisation.

The test oracle for :func:`rltrade.features.pivots_batch.compute_pivots`,
:func:`rltrade.features.pivots_features.pivot_features` and the streaming tracker, and the baseline of
``benchmarks/bench_pivots.py``. Definitions are in :mod:`rltrade.features.pivots` and
:mod:`rltrade.features.pivots_features`; nothing here is shared with the fast paths except the input
checks and the :class:`PivotSet` container. Slow by design: O(levels · T) Python steps for the pivots and
O(B · T) for the features.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rltrade.features.pivots_batch import (
    PivotArrays,
    PivotKind,
    PivotSet,
    check_bars,
    check_params,
    check_prices,
)

_Beats = Callable[[float, float], bool]
# (bar index, bar open time, price, confirm time)
_Row = tuple[int, int, float, int]


def _higher(a: float, b: float) -> bool:
    return a > b


def _lower(a: float, b: float) -> bool:
    return a < b


def _provisional(prices: Sequence[float], m: int, n: int, beats: _Beats) -> bool:
    """Provisional flag when only ``prices[:m]`` is visible."""
    for j in range(max(m - n, 0), m):
        if j < n:
            continue
        left = all(beats(prices[j], prices[j - i]) for i in range(1, n + 1))
        right = all(beats(prices[j], prices[q]) for q in range(j + 1, m))
        if left and right:
            return True
    return False


def _next_level(seq: list[_Row], n: int, beats: _Beats) -> list[_Row]:
    """Pivots of ``seq``: strictly beyond the n neighbours on each side; confirmed by the n-th right one."""
    out: list[_Row] = []
    for j in range(n, len(seq) - n):
        if all(beats(seq[j][2], seq[j + d][2]) for d in range(-n, n + 1) if d != 0):
            index, time_us, price, _ = seq[j]
            out.append((index, time_us, price, seq[j + n][3]))
    return out


def _to_arrays(rows: list[_Row]) -> PivotArrays:
    if not rows:
        return PivotArrays.empty()
    index, time_us, price, confirm = zip(*rows, strict=True)
    return PivotArrays(
        np.array(index, np.int64),
        np.array(time_us, np.int64),
        np.array(price, np.float64),
        np.array(confirm, np.int64),
    )


def reference_pivots(
    high_T: ArrayLike, low_T: ArrayLike, open_us_T: ArrayLike, tf_us: int, *, n: int = 2, levels: int = 5
) -> PivotSet:
    """Compute the same result as :func:`compute_pivots`, by loops."""
    check_params(tf_us, n, levels)
    high, low, opens = check_bars(high_T, low_T, open_us_T, tf_us)
    open_list = opens.tolist()
    found: dict[PivotKind, tuple[list[PivotArrays], list[NDArray[np.bool_]]]] = {}
    for kind, prices, beats in ((PivotKind.HIGH, high.tolist(), _higher), (PivotKind.LOW, low.tolist(), _lower)):
        seq: list[_Row] = [(i, open_list[i], prices[i], open_list[i] + tf_us) for i in range(len(prices))]
        per_level: list[PivotArrays] = []
        tables: list[NDArray[np.bool_]] = []
        for _ in range(levels):
            seq_prices = [row[2] for row in seq]
            tables.append(np.array([_provisional(seq_prices, m, n, beats) for m in range(len(seq) + 1)], np.bool_))
            seq = _next_level(seq, n, beats)
            per_level.append(_to_arrays(seq))
        found[kind] = (per_level, tables)
    return PivotSet(
        n=n,
        tf_us=tf_us,
        n_bars=len(high),
        highs=tuple(found[PivotKind.HIGH][0]),
        lows=tuple(found[PivotKind.LOW][0]),
        provisional_high=tuple(found[PivotKind.HIGH][1]),
        provisional_low=tuple(found[PivotKind.LOW][1]),
    )


def _level_row(
    t: int, p: float, tf: int, his: list[_Row], los: list[_Row], close: list[float], prov: tuple[bool, bool]
) -> list[float]:
    """Compute the 10 features of one level at t from its confirmed highs/lows (column order of the names)."""
    (hi_i, hi_t, h1, _), (lo_i, lo_t, l1, _) = his[-1], los[-1]
    high_later = hi_i > lo_i if hi_i != lo_i else close[hi_i] >= (h1 + l1) / 2
    trend = 0.0
    if len(his) >= 2 and len(los) >= 2:
        h2, l2 = his[-2][2], los[-2][2]
        if h2 < h1 and l2 < l1:
            trend = 1.0
        elif h2 > h1 and l2 > l1:
            trend = -1.0
    if high_later:
        proj = l1 * l1 / los[-2][2] if len(los) >= 2 else l1
        t_a, t_b = hi_t, lo_t
    else:
        proj = h1 * h1 / his[-2][2] if len(his) >= 2 else h1
        t_a, t_b = lo_t, hi_t
    x = (t_a + (t_a - t_b) - t) / tf
    return [
        math.log(h1 / p),
        math.log(l1 / p),
        math.log1p((t - (hi_t + tf)) / tf),
        math.log1p((t - (lo_t + tf)) / tf),
        trend,
        (1.0 if high_later else -1.0) * math.log(h1 / l1),
        math.log(proj / p),
        math.copysign(math.log1p(abs(x)), x) if x != 0 else 0.0,
        float(prov[0]),
        float(prov[1]),
    ]


def reference_pivot_features(
    high_T: ArrayLike,
    low_T: ArrayLike,
    close_T: ArrayLike,
    open_us_T: ArrayLike,
    tf_us: int,
    query_us_B: ArrayLike,
    *,
    n: int = 2,
    levels: int = 5,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Compute the same result as :func:`pivot_features` with ``dtype=np.float64``, one query at a time by loops."""
    pivots = reference_pivots(high_T, low_T, open_us_T, tf_us, n=n, levels=levels)
    high, low, opens = check_bars(high_T, low_T, open_us_T, tf_us)
    close_arr = np.asarray(close_T, np.float64)
    check_prices("close_T", close_arr)
    close = close_arr.tolist()
    bars = list(zip(opens.tolist(), high.tolist(), low.tolist(), strict=True))
    rows_of = {
        (kind, k): [(int(i), int(t), float(p), int(c)) for i, t, p, c in zip(*pivots.of(kind, k), strict=True)]
        for kind in PivotKind
        for k in range(levels)
    }
    queries = [int(q) for q in np.asarray(query_us_B).tolist()]
    feats = np.zeros((len(queries), 10 * levels), np.float64)
    mask = np.zeros((len(queries), levels), np.bool_)
    for b, t in enumerate(queries):
        closed = [bar for bar in bars if bar[0] + tf_us <= t]
        if not closed:
            continue
        p = close[len(closed) - 1]
        inputs = {PivotKind.HIGH: [bar[1] for bar in closed], PivotKind.LOW: [bar[2] for bar in closed]}
        for k in range(levels):
            his = [r for r in rows_of[PivotKind.HIGH, k] if r[3] <= t]
            los = [r for r in rows_of[PivotKind.LOW, k] if r[3] <= t]
            prov = (
                _provisional(inputs[PivotKind.HIGH], len(inputs[PivotKind.HIGH]), n, _higher),
                _provisional(inputs[PivotKind.LOW], len(inputs[PivotKind.LOW]), n, _lower),
            )
            if his and los:
                mask[b, k] = True
                feats[b, 10 * k : 10 * k + 10] = _level_row(t, p, tf_us, his, los, close, prov)
            inputs = {PivotKind.HIGH: [r[2] for r in his], PivotKind.LOW: [r[2] for r in los]}
    return feats, mask
