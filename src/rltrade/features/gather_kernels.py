"""Compiled (numba) kernels of the batch state gather: bar and tick windows written straight into the state rows.

The batch builder (:mod:`rltrade.features.state_batch`) spends almost all of its time copying windows:
five 300-bar windows and one 300-trade window per state. Written with numpy, each window is a fancy
index, a few temporaries and a strided copy into the state matrix (``benchmarks/bench_state.py``
measured the whole gather at 0.048 of a plain numpy copy of the same bytes). These kernels read each
series' interleaved per-bar (per-trade) arrays once and write the finished float32 values into the
caller's state rows in a single pass, so a bar window costs about what copying it costs.

Exactness: every value is computed with the same float64 operations, in the same order, as the numpy
reference (:func:`rltrade.features.bar_channels.bar_windows`,
:func:`rltrade.features.ticks.tick_windows`) and rounded to float32 once at the end, so the states are
bit-for-bit those of the reference (tests compare them with ``np.array_equal``). That is why the price
channels stay float64 per bar: a window's prices are relative to the close of its *last* bar, and
subtracting two float32 log prices near ``log(3000) ≈ 8`` keeps ~1e-6 absolute precision, about 1 % of
a typical 1-second move. The sums of a tick window follow numpy's pairwise summation
(:func:`pairwise_sum`), which is what ``ndarray.sum`` does on a contiguous row.

Indexing: numba gives every signed array index numpy's wraparound (``a[-1]`` is the last element), a
branch that keeps LLVM from vectorising a loop whose index it cannot prove non-negative, such as
``out[col0 + k]``. The window loops therefore index views that start at the window
(``dst = out[b, col0:…]``, ``dst[k]`` with ``k`` from ``range``): a bar window is then copied with
vector instructions, ~2x faster than with offset indices and as fast as numpy's copy of its bytes.

Transcendental functions (``exp``, ``log``, ``log1p``) are never evaluated here: numpy's SIMD versions
and the C library's may differ in the last bit, so the callers evaluate them with numpy, per trade
(query-independent) or per window, and pass the results in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np

_JIT: dict[str, Any] = {"nogil": True, "cache": True, "boundscheck": False}
_PW_BLOCKSIZE = 128  # numpy's pairwise-summation block (numpy/_core/src/umath/loops_utils.h.src)
_F = TypeVar("_F", bound=Callable[..., Any])


def fits_state_matrix(out_BF: np.ndarray, rows: int, col0: int, width: int) -> bool:
    """Return whether ``out_BF`` can take ``width`` columns from ``col0`` of ``rows`` states.

    That is a C-contiguous ``float32 [rows, F]`` state matrix, what the ``*_into`` kernels write into.
    """
    return (
        out_BF.ndim == 2
        and out_BF.shape[0] == rows
        and 0 <= col0 <= out_BF.shape[1] - width
        and out_BF.dtype == np.float32
        and bool(out_BF.flags.c_contiguous)
    )


def _compiled(fn: _F) -> _F:
    """Compile ``fn`` with numba (``_JIT`` options); typed so that mypy keeps checking ``fn``'s signature."""
    return cast(_F, numba.njit(**_JIT)(fn))


@_compiled
def _block_sum(a: np.ndarray, lo: int, n: int) -> float:  # pragma: no cover - compiled
    """Sum ``a[lo:lo+n]`` as numpy's pairwise sum does for ``n <= 128``: 8 running sums, then the tail in order."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    stop = n - (n % 8)
    i = 8
    while i < stop:
        j = lo + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return float(res)


@_compiled
def pairwise_sum(a: np.ndarray, lo: int, n: int, stack_3S: np.ndarray, val_S: np.ndarray) -> float:  # pragma: no cover
    """``a[lo:lo+n].sum()`` exactly as numpy's float64 pairwise summation computes it (same association).

    numpy sums blocks of at most 128 with :func:`_block_sum` and splits longer runs at
    ``n2 = n // 2 - (n // 2) % 8``, recursively; the recursion is unrolled here into an explicit stack
    (numba's cache cannot hold a self-recursive function): ``stack_3S`` int64 ``[3, 64]`` and ``val_S``
    float64 ``[64]`` are scratch space (64 levels cover any length).
    """
    if n <= _PW_BLOCKSIZE:
        return _block_sum(a, lo, n)
    sp, vp = 1, 0
    stack_3S[0, 0], stack_3S[1, 0], stack_3S[2, 0] = lo, n, 0  # start, length, phase
    while sp > 0:
        top = sp - 1
        k = stack_3S[1, top]
        if k <= _PW_BLOCKSIZE:
            val_S[vp] = _block_sum(a, stack_3S[0, top], k)
            vp += 1
            sp -= 1
            continue
        n2 = k // 2
        n2 -= n2 % 8
        phase = stack_3S[2, top]
        if phase == 2:  # both halves done: left + right
            val_S[vp - 2] = val_S[vp - 2] + val_S[vp - 1]
            vp -= 1
            sp -= 1
            continue
        stack_3S[2, top] = phase + 1  # phase 0 pushes the left half, phase 1 the right one
        stack_3S[0, sp] = stack_3S[0, top] + (n2 if phase == 1 else 0)
        stack_3S[1, sp] = k - n2 if phase == 1 else n2
        stack_3S[2, sp] = 0
        sp += 1
    return float(val_S[0])


@_compiled
def bar_windows_into(
    log_ohlc_T4: np.ndarray,
    per_bar_T4: np.ndarray,
    valid_T: np.ndarray,
    idx_B: np.ndarray,
    out_BF: np.ndarray,
    col0: int,
    mask_BW: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Write the ``W``-bar windows ending at bars ``idx_B`` into ``out_BF`` and their mask into ``mask_BW``.

    ``out_BF`` is the C-contiguous ``float32`` state matrix; the windows fill its columns ``col0 .. col0 + W·8``
    (contiguous rows let the compiler vectorise the stores); ``W = mask_BW.shape[1]``.

    Row ``j`` of window ``b`` is bar ``idx_B[b] - (W-1) + j``; channels 0-3 are
    ``float32(log_ohlc[r] - log_close[idx_B[b]])``, channels 4-7 the per-bar channels; rows before bar 0
    (every row when ``idx_B[b] == -1``) are 0 and masked. ``idx_B`` must lie in ``[-1, T)``.
    """
    n_b, w = mask_BW.shape
    log_ohlc, per_bar = log_ohlc_T4.ravel(), per_bar_T4.ravel()
    for b in range(n_b):
        e = idx_B[b]
        cref = log_ohlc[max(e, 0) * 4 + 3]
        first = e - (w - 1)  # the window's oldest bar; rows before bar 0 are padding
        pad = min(max(-first, 0), w)
        n = w - pad
        out = out_BF[b, col0 : col0 + w * 8]
        mask = mask_BW[b]
        for k in range(pad * 8):
            out[k] = 0.0
        for j in range(pad):
            mask[j] = False
        r0 = first + pad
        # Views from index 0 (see the module docstring): the loops below compile to vector code.
        dst = out[pad * 8 :]
        prices = log_ohlc[r0 * 4 : (r0 + n) * 4]
        rest = per_bar[r0 * 4 : (r0 + n) * 4]
        valid = valid_T[r0 : r0 + n]
        mask_n = mask[pad:]
        for j in range(n):
            for c in range(4):
                dst[j * 8 + c] = np.float32(prices[j * 4 + c] - cref)
            for c in range(4):
                dst[j * 8 + 4 + c] = rest[j * 4 + c]
        for j in range(n):
            mask_n[j] = valid[j]


@_compiled
def tick_window_sums(
    hi_B: np.ndarray,
    n_B: np.ndarray,
    m: int,
    logp_N: np.ndarray,
    qty_N: np.ndarray,
    price_N: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Per window: total quantity, Σ price·qty, highest and lowest log price (``±inf`` when empty).

    Window ``b`` holds trades ``hi_B[b]-1, hi_B[b]-2, …`` (newest first), its first ``n_B[b]`` rows
    valid and the rest zero up to ``m`` rows, summed in that row order as numpy sums the ``[B, m]`` rows.
    """
    n_b = hi_B.shape[0]
    total = np.empty(n_b)
    pq = np.empty(n_b)
    high = np.empty(n_b)
    low = np.empty(n_b)
    row_q = np.zeros(m)
    row_pq = np.zeros(m)
    stack_3S = np.empty((3, 64), np.int64)
    val_S = np.empty(64)
    for b in range(n_b):
        n = n_B[b]
        lo = hi_B[b] - n  # the window's oldest trade: row i (newest first) is trade lo + n - 1 - i
        logp, qty, price = logp_N[lo : lo + n], qty_N[lo : lo + n], price_N[lo : lo + n]
        h = -np.inf
        lw = np.inf
        for j in range(n):  # j = n - 1 - i
            row_q[n - 1 - j] = qty[j]
            row_pq[n - 1 - j] = price[j] * qty[j]
            h = max(h, logp[j])
            lw = min(lw, logp[j])
        tail_q, tail_pq = row_q[n:], row_pq[n:]
        for i in range(m - n):
            tail_q[i] = 0.0
            tail_pq[i] = 0.0
        total[b] = pairwise_sum(row_q, 0, m, stack_3S, val_S)
        pq[b] = pairwise_sum(row_pq, 0, m, stack_3S, val_S)
        high[b] = h
        low[b] = lw
    return total, pq, high, low


@_compiled
def tick_windows_into(
    t_B: np.ndarray,
    hi_B: np.ndarray,
    n_B: np.ndarray,
    window_us: float,
    ts_N: np.ndarray,
    logp_N: np.ndarray,
    qty_N: np.ndarray,
    side_N: np.ndarray,
    signed_size_X: np.ndarray,
    signed_base_B: np.ndarray,
    interarrival_N: np.ndarray,
    tick_return_N: np.ndarray,
    intensity_N: np.ndarray,
    total_B: np.ndarray,
    log_vwap_B: np.ndarray,
    high_B: np.ndarray,
    low_B: np.ndarray,
    out_BF: np.ndarray,
    col0: int,
    mask_BM: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Write the ten tick features of each window into columns ``col0 .. col0 + m·10`` of ``out_BF`` and the mask.

    Feature 1, ``side · log1p(qty / qty_scale)``, and the per-window ``log_vwap_B`` come from numpy (see
    the module docstring): trade ``k`` of window ``b`` has feature 1 ``signed_size_X[signed_base_B[b] + k]``
    (the values under the window's normaliser step). Every other value is the float64 arithmetic of
    :func:`rltrade.features.ticks._window_features`, rows newest first, invalid rows 0.
    """
    n_b, m = mask_BM.shape
    for b in range(n_b):
        n = n_B[b]
        lo = hi_B[b] - n  # the window's oldest trade: row i (newest first) is trade lo + n - 1 - i
        out = out_BF[b, col0 : col0 + m * 10]
        mask = mask_BM[b]
        total = total_B[b]
        safe_total = total if total > 0 else 1.0
        span = high_B[b] - low_B[b]
        has_range = np.isfinite(span) and span > 0
        scale = span if has_range else 1.0
        low, log_vwap, t, logp_last = low_B[b], log_vwap_B[b], t_B[b], logp_N[max(hi_B[b] - 1, 0)]
        # The reference's reversed cumsum runs from the oldest row (m-1) to the newest. Rows past n are
        # invalid: they read trade 0 with weight 0, i.e. add a signed zero, and are written as 0.
        zero = side_N[0] * (qty_N[0] * 0.0)
        cum = 0.0
        for i in range(m - 1, n - 1, -1):
            cum = zero if i == m - 1 else cum + zero
        pad, pad_mask = out[n * 10 :], mask[n:]
        for k in range((m - n) * 10):
            pad[k] = 0.0
        for i in range(m - n):
            pad_mask[i] = False
        # Views of the window's trades, oldest first (see the module docstring).
        ts, logp, qty, side = ts_N[lo : lo + n], logp_N[lo : lo + n], qty_N[lo : lo + n], side_N[lo : lo + n]
        size = signed_size_X[signed_base_B[b] + lo : signed_base_B[b] + lo + n]
        gap, ret, burst = interarrival_N[lo : lo + n], tick_return_N[lo : lo + n], intensity_N[lo : lo + n]
        for j in range(n):  # oldest first: row i = n - 1 - j
            signed = side[j] * qty[j]
            cum = signed if n - 1 - j == m - 1 else cum + signed
            lp = logp[j]
            dst = out[(n - 1 - j) * 10 : (n - j) * 10]
            dst[0] = np.float32(lp - logp_last)
            dst[1] = np.float32(size[j])
            dst[2] = np.float32(side[j])
            dst[3] = np.float32(np.float64(t - ts[j]) / window_us)
            dst[4] = np.float32(gap[j])
            dst[5] = np.float32(ret[j])
            dst[6] = np.float32(cum / safe_total)
            dst[7] = np.float32(lp - log_vwap)
            dst[8] = np.float32(burst[j])
            dst[9] = np.float32(2.0 * (lp - low) / scale - 1.0) if has_range else np.float32(0.0)
        for i in range(n):
            mask[i] = True


@_compiled
def pivot_level_states(
    query_B: np.ndarray,
    n_closed_B: np.ndarray,
    close_T: np.ndarray,
    tf_us: int,
    off_hi: np.ndarray,
    hi_IP: np.ndarray,
    hi_price_P: np.ndarray,
    off_lo: np.ndarray,
    lo_IP: np.ndarray,
    lo_price_P: np.ndarray,
    off_ph: np.ndarray,
    prov_hi_M: np.ndarray,
    off_pl: np.ndarray,
    prov_lo_M: np.ndarray,
    ints_6BL: np.ndarray,
    floats_5BL: np.ndarray,
    flags_5BL: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Gather every level's pivot state at each query, as ``pivots_features._gather_level`` does level by level.

    Level ``k``'s highs are rows ``off_hi[k]:off_hi[k+1]`` of ``hi_IP`` (int64 ``[3, P]``: bar index, bar
    open time, confirm time) and ``hi_price_P``; lows likewise; its provisional tables are
    ``prov_*_M[off_p*[k]:off_p*[k+1]]``. Writes ``ints_6BL`` (hi1_time, hi1_index, lo1_time, lo1_index,
    n_hi, n_lo), ``floats_5BL`` (hi1_price, hi2_price, lo1_price, lo2_price, hi1_bar_close) and
    ``flags_5BL`` (has_hi2, has_lo2, prov_high, prov_low, available). Only indexing, no arithmetic beyond
    the placeholder time ``query - tf``: the values are exactly the numpy gather's.
    """
    n_b = query_B.shape[0]
    n_levels = off_hi.shape[0] - 1
    for b in range(n_b):
        q = query_B[b]
        has_price = n_closed_B[b] >= 1
        seen_hi = n_closed_B[b]
        seen_lo = n_closed_B[b]
        for k in range(n_levels):
            a_hi, z_hi = off_hi[k], off_hi[k + 1]
            a_lo, z_lo = off_lo[k], off_lo[k + 1]
            n_hi = np.searchsorted(hi_IP[2, a_hi:z_hi], q, side="right")
            n_lo = np.searchsorted(lo_IP[2, a_lo:z_lo], q, side="right")
            h1, l1 = a_hi + n_hi - 1, a_lo + n_lo - 1
            hi1_index = hi_IP[0, h1] if n_hi >= 1 else 0
            ints_6BL[0, b, k] = hi_IP[1, h1] if n_hi >= 1 else q - tf_us
            ints_6BL[1, b, k] = hi1_index
            ints_6BL[2, b, k] = lo_IP[1, l1] if n_lo >= 1 else q - tf_us
            ints_6BL[3, b, k] = lo_IP[0, l1] if n_lo >= 1 else 0
            ints_6BL[4, b, k] = n_hi
            ints_6BL[5, b, k] = n_lo
            floats_5BL[0, b, k] = hi_price_P[h1] if n_hi >= 1 else 1.0
            floats_5BL[1, b, k] = hi_price_P[h1 - 1] if n_hi >= 2 else 1.0
            floats_5BL[2, b, k] = lo_price_P[l1] if n_lo >= 1 else 1.0
            floats_5BL[3, b, k] = lo_price_P[l1 - 1] if n_lo >= 2 else 1.0
            floats_5BL[4, b, k] = close_T[hi1_index] if n_hi >= 1 and close_T.shape[0] > 0 else 1.0
            flags_5BL[0, b, k] = n_hi >= 2
            flags_5BL[1, b, k] = n_lo >= 2
            flags_5BL[2, b, k] = prov_hi_M[off_ph[k] + seen_hi]
            flags_5BL[3, b, k] = prov_lo_M[off_pl[k] + seen_lo]
            flags_5BL[4, b, k] = has_price and n_hi >= 1 and n_lo >= 1
            seen_hi, seen_lo = n_hi, n_lo


@_compiled
def _level_state(
    ints_6BL: np.ndarray, floats_5BL: np.ndarray, b: int, k: int
) -> tuple[int, int, int, int, float, float, float, float, float]:  # pragma: no cover - compiled
    """Return query ``b``'s level-``k`` state from :func:`pivot_level_states`' output.

    That is H1's time and bar index, L1's, then the prices H1, H2, L1, L2 and the close of H1's bar.
    """
    return (
        ints_6BL[0, b, k],
        ints_6BL[1, b, k],
        ints_6BL[2, b, k],
        ints_6BL[3, b, k],
        floats_5BL[0, b, k],
        floats_5BL[1, b, k],
        floats_5BL[2, b, k],
        floats_5BL[3, b, k],
        floats_5BL[4, b, k],
    )


@_compiled
def _high_later(hi1_i: int, lo1_i: int, hi1: float, lo1: float, hi1_close: float) -> bool:  # pragma: no cover
    """Whether H1 is later than L1: by bar index, or on the same bar when its close is in the upper half."""
    return hi1_i > lo1_i or (hi1_i == lo1_i and 2.0 * hi1_close >= hi1 + lo1)


@_compiled
def pivot_log_args(
    query_B: np.ndarray, price_B: np.ndarray, tf_us: int, ints_6BL: np.ndarray, floats_5BL: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Return the arguments of every ``log`` and ``log1p`` of the pivot features (from :func:`pivot_level_states`).

    Returns float64 ``log_6BL`` (price, H1, L1, H1/L1, L1/L2, H1/H2) and ``log1p_3BL`` ((t − H1's time −
    tf)/tf, the same for L1, |x| of ``proj_time``), each the float64 arithmetic of
    :func:`rltrade.features.pivots_features.level_features`; the caller takes the logs with numpy
    (module docstring) and :func:`pivot_features_into` assembles the features.
    """
    _, n_b, n_l = ints_6BL.shape
    tf = np.float64(tf_us)
    log_6BL = np.empty((6, n_b, n_l))
    log1p_3BL = np.empty((3, n_b, n_l))
    for b in range(n_b):
        q = query_B[b]
        for k in range(n_l):
            hi1_t, hi1_i, lo1_t, lo1_i, hi1, hi2, lo1, lo2, hi1_close = _level_state(ints_6BL, floats_5BL, b, k)
            log_6BL[0, b, k] = price_B[b]
            log_6BL[1, b, k] = hi1
            log_6BL[2, b, k] = lo1
            log_6BL[3, b, k] = hi1 / lo1
            log_6BL[4, b, k] = lo1 / lo2
            log_6BL[5, b, k] = hi1 / hi2
            log1p_3BL[0, b, k] = np.float64(q - hi1_t - tf_us) / tf
            log1p_3BL[1, b, k] = np.float64(q - lo1_t - tf_us) / tf
            high_later = _high_later(hi1_i, lo1_i, hi1, lo1, hi1_close)
            t_later, t_earlier = (hi1_t, lo1_t) if high_later else (lo1_t, hi1_t)
            log1p_3BL[2, b, k] = abs(np.float64(2 * t_later - t_earlier - q) / tf)
    return log_6BL, log1p_3BL


@_compiled
def pivot_features_into(
    query_B: np.ndarray,
    tf_us: int,
    ints_6BL: np.ndarray,
    floats_5BL: np.ndarray,
    flags_5BL: np.ndarray,
    logs_6BL: np.ndarray,
    log1ps_3BL: np.ndarray,
    out_BLK: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Write the 10 features per level into ``out_BLK`` (``[B, L, 10]``, float32 or float64) from the logs.

    ``logs_6BL`` and ``log1ps_3BL`` are numpy's logs of :func:`pivot_log_args`' output; every other
    operation is the float64 arithmetic of ``level_features``, in its order, rounded once when written.
    """
    _, n_b, n_l = ints_6BL.shape
    tf = np.float64(tf_us)
    for b in range(n_b):
        q = query_B[b]
        for k in range(n_l):
            if not flags_5BL[4, b, k]:  # unavailable: all zero, flags included
                for c in range(10):
                    out_BLK[b, k, c] = 0.0
                continue
            hi1_t, hi1_i, lo1_t, lo1_i, hi1, hi2, lo1, lo2, hi1_close = _level_state(ints_6BL, floats_5BL, b, k)
            has_hi2, has_lo2 = flags_5BL[0, b, k], flags_5BL[1, b, k]
            log_p = logs_6BL[0, b, k]
            high_rel = logs_6BL[1, b, k] - log_p
            low_rel = logs_6BL[2, b, k] - log_p
            high_later = _high_later(hi1_i, lo1_i, hi1, lo1, hi1_close)
            both2 = has_hi2 and has_lo2
            up = both2 and hi1 > hi2 and lo1 > lo2
            down = both2 and hi1 < hi2 and lo1 < lo2
            next_low = low_rel + (logs_6BL[4, b, k] if has_lo2 else 0.0)
            next_high = high_rel + (logs_6BL[5, b, k] if has_hi2 else 0.0)
            t_later, t_earlier = (hi1_t, lo1_t) if high_later else (lo1_t, hi1_t)
            x = np.float64(2 * t_later - t_earlier - q) / tf
            out_BLK[b, k, 0] = high_rel
            out_BLK[b, k, 1] = low_rel
            out_BLK[b, k, 2] = log1ps_3BL[0, b, k]
            out_BLK[b, k, 3] = log1ps_3BL[1, b, k]
            out_BLK[b, k, 4] = (1.0 if up else 0.0) - (1.0 if down else 0.0)
            out_BLK[b, k, 5] = (1.0 if high_later else -1.0) * logs_6BL[3, b, k]
            out_BLK[b, k, 6] = next_low if high_later else next_high
            out_BLK[b, k, 7] = np.sign(x) * log1ps_3BL[2, b, k]
            out_BLK[b, k, 8] = 1.0 if flags_5BL[2, b, k] else 0.0
            out_BLK[b, k, 9] = 1.0 if flags_5BL[3, b, k] else 0.0
