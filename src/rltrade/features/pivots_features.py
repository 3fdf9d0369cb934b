"""Pivot features at arbitrary query times: 10 per level, 50 for the default 5 levels.

What a value at query time t sees: pivots with ``confirm_us <= t``, bars with ``open_us + tf_us <= t``
(closed by t), and nothing else. "Price" ``p`` is the close of the last closed bar at t.

Per level k (columns ``10k .. 10k+9``, names in :data:`PIVOT_FEATURE_NAMES`), with H1, H2 the last and
previous confirmed level-k highs, L1, L2 the same for lows, and ``tf`` the bar length:

=====  ==============  ==================================================================================
col    name            value
=====  ==============  ==================================================================================
0      high_rel        ``log(H1 / p)``
1      low_rel         ``log(L1 / p)``
2      high_age        ``log1p((t - close time of H1's bar) / tf)``: elapsed time in bars, log-compressed
                       because ages run from 0 to tens of thousands of bars across levels
3      low_age         the same for L1
4      trend           +1 if H1 > H2 and L1 > L2, -1 if H1 < H2 and L1 < L2, else 0 (also 0 without H2/L2)
5      strength        signed size of the last swing, ``±log(H1 / L1)``: + when the later of H1 and L1 is
                       the high (an up swing), - when it is the low
6      proj_price      log(projected next pivot / p). The next pivot is of the kind opposite to the later
                       of H1, L1; its price extrapolates that kind's last step geometrically: after a high,
                       ``L1 · L1 / L2`` (``L1`` without L2); after a low, ``H1 · H1 / H2``
7      proj_time       time to the projected next pivot, assuming the last swing's duration repeats:
                       ``x = (2·t_a - t_b - t) / tf`` in bars, where t_a, t_b are the open times of the later
                       and earlier of H1, L1; stored as ``sign(x)·log1p(|x|)`` (negative when overdue)
8      prov_high       1 if level k has a provisional high at t (below), else 0
9      prov_low        the same for lows
=====  ==============  ==================================================================================

"Later of H1, L1" is decided by bar index; when both sit on the same (outside) bar the bar's close breaks
the tie: the high counts as later when ``2·close >= H1 + L1`` (the bar ended in its upper half).

Provisional flag: level k's input sequence (bars for k = 0, confirmed level-(k-1) pivots of the same kind
for k ≥ 1) is cut to what is visible at t; the flag is set when one of its last n elements has n left
neighbours, is strictly above them (below, for lows) and strictly above every right neighbour seen so far,
i.e. it becomes a level-k pivot if the remaining right neighbours arrive strictly lower.

Availability: a level is available at t when it has at least one confirmed high and one confirmed low.
Unavailable levels are all zero (flags included) and ``mask_BL`` is False there. No value is ever NaN.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from rltrade.features import gather_kernels as kernels
from rltrade.features.pivots_batch import (
    F64,
    I64,
    BoolArr,
    PivotArrays,
    PivotInputError,
    PivotSet,
    check_opens,
    check_prices,
)

FEATURES_PER_LEVEL: Final = 10
_LEVEL_FEATURES: Final = (
    "high_rel",
    "low_rel",
    "high_age",
    "low_age",
    "trend",
    "strength",
    "proj_price",
    "proj_time",
    "prov_high",
    "prov_low",
)


def pivot_feature_names(levels: int = 5) -> tuple[str, ...]:
    """Column names of the feature matrix for ``levels`` levels, level-major: ``pivot_l{k}_{name}``."""
    return tuple(f"pivot_l{k}_{name}" for k in range(levels) for name in _LEVEL_FEATURES)


PIVOT_FEATURE_NAMES: Final = pivot_feature_names(5)


class LevelState(NamedTuple):
    """What the features of one level need at one query time; every field has the same shape S.

    Missing values hold placeholders that keep every formula finite (price 1.0, time ``t - tf``); the
    availability mask zeroes their features afterwards. Filled by :func:`pivot_features` (gathered from a
    :class:`PivotSet`) and by the streaming tracker (from its state). :func:`level_features` turns it into
    features with numpy (the reference); both paths run the compiled form of the same arithmetic
    (:func:`rltrade.features.gather_kernels.pivot_features_into`), so they agree bit for bit.
    """

    query_us: I64
    price: F64
    hi1_price: F64
    hi2_price: F64
    hi1_time_us: I64
    hi1_index: I64
    lo1_price: F64
    lo2_price: F64
    lo1_time_us: I64
    lo1_index: I64
    hi1_bar_close: F64
    """Close of H1's bar: breaks the tie when H1 and L1 sit on the same bar."""
    has_hi2: BoolArr
    has_lo2: BoolArr
    prov_high: BoolArr
    prov_low: BoolArr
    available: BoolArr


LEVEL_STATE_DTYPES: Final[tuple[type[np.generic], ...]] = (
    np.int64,
    *(np.float64,) * 3,
    *(np.int64,) * 2,
    *(np.float64,) * 2,
    *(np.int64,) * 2,
    np.float64,
    *(np.bool_,) * 5,
)
"""dtype of each :class:`LevelState` field, in field order."""


def level_features(s: LevelState, tf_us: int, out: NDArray[np.floating] | None = None) -> NDArray[np.floating]:
    """Features of shape ``S + (10,)`` from a :class:`LevelState` of shape S, never NaN.

    Computed in float64 and written into ``out`` when given (any float dtype, may be a strided view; a
    float32 ``out`` receives the float64 values rounded once), else into a new float64 array.
    """
    if out is None:
        out = np.empty((*s.price.shape, FEATURES_PER_LEVEL), dtype=np.float64)
    tf = float(tf_us)
    log_p = np.log(s.price)
    high_rel = np.log(s.hi1_price) - log_p
    low_rel = np.log(s.lo1_price) - log_p
    high_later = (s.hi1_index > s.lo1_index) | (
        (s.hi1_index == s.lo1_index) & (2.0 * s.hi1_bar_close >= s.hi1_price + s.lo1_price)
    )
    out[..., 0] = high_rel
    out[..., 1] = low_rel
    out[..., 2] = np.log1p((s.query_us - s.hi1_time_us - tf_us) / tf)
    out[..., 3] = np.log1p((s.query_us - s.lo1_time_us - tf_us) / tf)
    both2 = s.has_hi2 & s.has_lo2
    up = both2 & (s.hi1_price > s.hi2_price) & (s.lo1_price > s.lo2_price)
    down = both2 & (s.hi1_price < s.hi2_price) & (s.lo1_price < s.lo2_price)
    out[..., 4] = up.astype(np.float64) - down
    out[..., 5] = np.where(high_later, 1.0, -1.0) * np.log(s.hi1_price / s.lo1_price)
    next_low = low_rel + np.where(s.has_lo2, np.log(s.lo1_price / s.lo2_price), 0.0)
    next_high = high_rel + np.where(s.has_hi2, np.log(s.hi1_price / s.hi2_price), 0.0)
    out[..., 6] = np.where(high_later, next_low, next_high)
    t_later = np.where(high_later, s.hi1_time_us, s.lo1_time_us)
    t_earlier = np.where(high_later, s.lo1_time_us, s.hi1_time_us)
    x = (2 * t_later - t_earlier - s.query_us) / tf
    out[..., 7] = np.sign(x) * np.log1p(np.abs(x))
    out[..., 8] = s.prov_high
    out[..., 9] = s.prov_low
    out[~s.available] = 0.0
    return out


def _take(values: NDArray[np.generic], pos: I64, fill: float | int) -> NDArray[np.generic]:
    """``values[pos]`` where ``pos >= 0``, ``fill`` elsewhere (also when ``values`` is empty)."""
    if len(values) == 0:
        return np.full(pos.shape, fill, dtype=values.dtype)
    return np.where(pos >= 0, values[np.maximum(pos, 0)], np.asarray(fill, dtype=values.dtype))


def _gather_level(
    highs: PivotArrays,
    lows: PivotArrays,
    prov_high_M: BoolArr,
    prov_low_M: BoolArr,
    seen_hi_B: I64,
    seen_lo_B: I64,
    price_B: F64,
    has_price_B: BoolArr,
    close_T: F64,
    query_B: I64,
    tf_us: int,
) -> tuple[LevelState, I64, I64]:
    """Gather one level's state; also return its confirmed-pivot counts (the next level's input sizes)."""
    n_hi = np.searchsorted(highs.confirm_us_P, query_B, side="right").astype(np.int64)
    n_lo = np.searchsorted(lows.confirm_us_P, query_B, side="right").astype(np.int64)
    hi1, lo1 = n_hi - 1, n_lo - 1
    hi1_index = _take(highs.index_P, hi1, 0).astype(np.int64)
    placeholder_time = query_B - tf_us
    state = LevelState(
        query_us=query_B,
        price=price_B,
        hi1_price=_take(highs.price_P, hi1, 1.0).astype(np.float64),
        hi2_price=_take(highs.price_P, hi1 - 1, 1.0).astype(np.float64),
        hi1_time_us=np.where(hi1 >= 0, _take(highs.time_us_P, hi1, 0), placeholder_time).astype(np.int64),
        hi1_index=hi1_index,
        lo1_price=_take(lows.price_P, lo1, 1.0).astype(np.float64),
        lo2_price=_take(lows.price_P, lo1 - 1, 1.0).astype(np.float64),
        lo1_time_us=np.where(lo1 >= 0, _take(lows.time_us_P, lo1, 0), placeholder_time).astype(np.int64),
        lo1_index=_take(lows.index_P, lo1, 0).astype(np.int64),
        hi1_bar_close=_take(close_T, np.where(hi1 >= 0, hi1_index, -1), 1.0).astype(np.float64),
        has_hi2=n_hi >= 2,
        has_lo2=n_lo >= 2,
        prov_high=prov_high_M[seen_hi_B],
        prov_low=prov_low_M[seen_lo_B],
        available=has_price_B & (n_hi >= 1) & (n_lo >= 1),
    )
    return state, n_hi, n_lo


def pivot_features(
    pivots: PivotSet,
    close_T: ArrayLike,
    open_us_T: ArrayLike,
    query_us_B: ArrayLike,
    *,
    dtype: DTypeLike = np.float32,
) -> tuple[NDArray[np.floating], BoolArr]:
    """Pivot features at each query time: ``(features_BF, mask_BL)`` with ``F = 10 · levels``.

    ``close_T`` and ``open_us_T`` are the bars ``pivots`` was computed from; ``query_us_B`` are arbitrary
    µs times in any order. A row at t uses only pivots with ``confirm_us <= t`` and bars closed by t (see
    the module docstring for the columns). ``mask_BL[b, k]`` says level k is available at query b;
    unavailable levels are zero. ``dtype=np.float64`` gives the unrounded values.
    """
    close = np.ascontiguousarray(close_T, dtype=np.float64)
    opens = np.asarray(open_us_T)
    query = np.asarray(query_us_B)
    if opens.dtype.kind not in "iu" or query.dtype.kind not in "iu":
        raise PivotInputError(
            f"open_us_T and query_us_B must be integer µs, got dtypes {opens.dtype} and {query.dtype}"
        )
    if close.ndim != 1 or opens.ndim != 1 or query.ndim != 1:
        raise PivotInputError("close_T, open_us_T and query_us_B must be 1-D arrays")
    if not len(close) == len(opens) == pivots.n_bars:
        raise PivotInputError(
            f"close_T ({len(close)}) and open_us_T ({len(opens)}) must have the {pivots.n_bars} bars "
            "the PivotSet was computed from"
        )
    check_prices("close_T", close)
    opens = opens.astype(np.int64)
    check_opens(opens, pivots.tf_us)
    return pivot_features_checked(pivots, close, opens + np.int64(pivots.tf_us), query.astype(np.int64), dtype=dtype)


def pivot_features_checked(
    pivots: PivotSet, close_T: F64, close_us_T: I64, query_B: I64, *, dtype: DTypeLike = np.float32
) -> tuple[NDArray[np.floating], BoolArr]:
    """:func:`pivot_features` on bars already checked by it (float64 closes, int64 close times, int64 queries).

    For callers that query the same bars many times (the batch state builder checks them once): the
    per-call checks scan every bar of the series, which costs more than the features of a batch.
    """
    n = len(query_B)
    feats_BLK = np.empty((n, pivots.levels, FEATURES_PER_LEVEL), dtype=dtype)
    mask_BL = np.empty((n, pivots.levels), dtype=np.bool_)
    # chunks keep the ~40 temporaries per level cache-sized; one big pass is several times slower
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        _features_chunk(pivots, close_T, close_us_T, query_B[start:stop], feats_BLK[start:stop], mask_BL[start:stop])
    return feats_BLK.reshape(n, pivots.levels * FEATURES_PER_LEVEL), mask_BL


_CHUNK: Final = 1 << 13


def _features_chunk(
    pivots: PivotSet,
    close_T: F64,
    close_us_T: I64,
    query_B: I64,
    out_BLK: NDArray[np.floating],
    mask_BL: BoolArr,
) -> None:
    """Gather every level's state in one compiled pass, then the features of all levels in two more.

    The gather is indexing only (:func:`rltrade.features.gather_kernels.pivot_level_states`, the same
    values as :func:`_gather_level` level by level); the features' arithmetic is :func:`level_features`'
    in compiled form, around two numpy calls for all of their logs (numpy's, as in :func:`level_features`:
    where the machine's numpy has no SIMD float64 log the values are bit for bit those of
    :func:`level_features`, elsewhere within an ulp of float64 before the float32 rounding).
    """
    n, levels = query_B.shape[0], pivots.levels
    if levels == 0 or n == 0:
        return
    n_closed = np.searchsorted(close_us_T, query_B, side="right").astype(np.int64)
    price = _take(close_T, n_closed - 1, 1.0).astype(np.float64)
    p = pivots.packed
    ints = np.empty((6, n, levels), dtype=np.int64)
    floats = np.empty((5, n, levels), dtype=np.float64)
    flags = np.empty((5, n, levels), dtype=np.bool_)
    kernels.pivot_level_states(
        query_B,
        n_closed,
        np.ascontiguousarray(close_T, dtype=np.float64),
        int(pivots.tf_us),
        p.off_hi,
        p.hi_IP,
        p.hi_price_P,
        p.off_lo,
        p.lo_IP,
        p.lo_price_P,
        p.off_prov_hi,
        p.prov_hi_M,
        p.off_prov_lo,
        p.prov_lo_M,
        ints,
        floats,
        flags,
    )
    log_args, log1p_args = kernels.pivot_log_args(query_B, price, int(pivots.tf_us), ints, floats)
    kernels.pivot_features_into(
        query_B, int(pivots.tf_us), ints, floats, flags, np.log(log_args), np.log1p(log1p_args), out_BLK
    )
    mask_BL[:] = flags[4]
