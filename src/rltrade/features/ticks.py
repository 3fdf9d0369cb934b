"""The ticks block: the most recent trades before a query time, 10 features each, zero-padded and masked.

At query time ``t`` (µs) the block holds the trades with ``t - window_us < ts_us <= t`` (a trade at
exactly ``t`` is in, one at exactly ``t - 300 s`` is out), at most the ``max_trades`` most recent of
them (defaults: 300 s, 300 trades). Rows are **most recent first**: row 0 is the last trade at or
before ``t``, row ``n-1`` the oldest one kept; rows ``n..max_trades-1`` are zero with mask False.
Trades with equal timestamps keep their order in the input (the exchange's trade-id order).

The 10 features of the trade ``k`` in a row (:data:`TICK_FEATURE_NAMES`); "window" means the trades
kept in the block at ``t``, "previous trade" the trade before ``k`` in the whole series:

==  ===================  ===========================================================================
 #  name                 value
==  ===================  ===========================================================================
 0  log_price_rel_last   ``log(price_k / price of row 0)``, the last traded price at ``t``
 1  signed_log_size      ``side_k · log1p(qty_k / qty_scale)``
 2  side                 aggressor side, +1 buy / -1 sell
 3  age                  ``(t - ts_k) / window_us``, in [0, 1)
 4  log_interarrival     ``log1p(dt / 1 ms) / log1p(window / 1 ms)``, ``dt = ts_k - ts_prev`` capped at
                         ``window_us`` (also for the first trade of the series), in [0, 1]
 5  tick_return          ``log(price_k / price_prev)``; 0 for the first trade of the series
 6  cum_signed_volume    ``Σ side·qty`` from the oldest window trade up to ``k``, over ``Σ qty`` of the
                         window, in [-1, 1]; row 0 holds the window's order-flow imbalance
 7  log_price_rel_vwap   ``log(price_k / VWAP of the window)``
 8  intensity_1s         ``log1p(n)``, ``n`` the trades in ``(ts_k - 1 s, ts_k]`` up to and including
                         ``k`` (burst detector)
 9  range_position       where ``price_k`` lies in the window's [low, high]: -1 at the low, +1 at the
                         high, 0 when the window has a single price
==  ===================  ===========================================================================

Features 0-3 and 6-9 use only window trades; 4, 5 and 8 use ``k`` and the trades before it. Every
value at ``t`` therefore uses trades with ``ts_us <= t`` only.

Normaliser: ``qty_scale`` is a number in :class:`TickSpec`, never a statistic of the window being
featurised. Fit it on a training range with :func:`fit_qty_scale` (median trade size), which records
the range it was fitted on (SPEC §2.2: fitted statistics record their time range). The fit is causal:
inside its range the normaliser at ``t`` is an *expanding* median, the median trade size of the range's
trades before the last checkpoint ``<= t`` (checkpoints 1, 2, 4, 8, ... minutes after the range's start,
then its end; 1.0 before the first), so a training state never depends on a later trade; from the
range's end on (validation, test, live) it is the median of the whole range
(:meth:`TickSpec.qty_scale_at`).

Two implementations that agree to float rounding (tested to 1e-6): :func:`tick_windows` for an array
of query times over a whole trade series (``searchsorted``, then compiled kernels that write the
finished rows, bit-for-bit the numpy arithmetic of :func:`_window_features`), and :class:`TickStream`,
a ring buffer updated trade by trade with
:meth:`TickStream.features_at` for live use. A stream fed from the series' first trade agrees at every
``t``; one started later (first trade at ``ts_0``) agrees from ``t >= ts_0 + window_us + intensity_us``
on, once no window trade needs a trade the stream never saw (features 4, 5 and 8).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from typing import Final

import numpy as np
import numpy.typing as npt

from rltrade.data.splits import TimeRange
from rltrade.features import gather_kernels as kernels
from rltrade.features.bar_channels import FeatureInputError, check_series
from rltrade.types import US_PER_SECOND

TICK_FEATURE_NAMES: Final = (
    "log_price_rel_last",
    "signed_log_size",
    "side",
    "age",
    "log_interarrival",
    "tick_return",
    "cum_signed_volume",
    "log_price_rel_vwap",
    "intensity_1s",
    "range_position",
)
N_TICK_FEATURES: Final = len(TICK_FEATURE_NAMES)
_US_PER_MS: Final = 1_000


@dataclass(frozen=True)
class TickSpec:
    """Window and normaliser of the ticks block."""

    window_us: int = 300 * US_PER_SECOND
    """Time span of the block: trades with ``t - window_us < ts <= t``."""
    max_trades: int = 300
    """At most this many (the most recent) trades are kept."""
    qty_scale: float = 1.0
    """Trade size that maps to ``log1p(1)``; use :func:`fit_qty_scale` on training data."""
    intensity_us: int = US_PER_SECOND
    """Span of the burst counter of feature 8."""
    qty_scale_steps: tuple[tuple[int, float], ...] = ()
    """The causal schedule of the normaliser inside its fit range (:attr:`QtyScale.steps`): ``(from_us,
    value)`` pairs in time order; empty means ``qty_scale`` at every time."""

    def __post_init__(self) -> None:
        """Check the window, trade count and intensity bounds, and that every size scale is finite and positive."""
        if self.window_us < _US_PER_MS or self.max_trades < 1 or self.intensity_us < 1:
            raise ValueError(f"TickSpec: window_us >= 1 ms, max_trades >= 1, intensity_us >= 1; got {self}")
        values = [self.qty_scale, *(v for _, v in self.qty_scale_steps)]
        if not all(np.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"TickSpec.qty_scale (and its steps) must be finite and > 0, got {values}")
        starts = [s for s, _ in self.qty_scale_steps]
        if any(b <= a for a, b in pairwise(starts)):
            raise ValueError(f"TickSpec.qty_scale_steps must be in strictly increasing time order, got {starts}")

    def qty_scale_schedule(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """``(starts_S, scales_J)``: a query at ``t`` has normaliser ``scales_J[searchsorted(starts_S, t, "right")]``.

        With steps, ``J = S + 1``: 1.0 before the first step, then each step's value from its start. Without
        steps, no start and the one value ``qty_scale``.
        """
        if not self.qty_scale_steps:
            return np.zeros(0, np.int64), np.array([self.qty_scale], dtype=np.float64)
        starts = np.array([s for s, _ in self.qty_scale_steps], dtype=np.int64)
        return starts, np.array([1.0, *(v for _, v in self.qty_scale_steps)], dtype=np.float64)

    def qty_scale_at(self, t_us_B: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Return the normaliser at each query time (:meth:`qty_scale_schedule`).

        That is the last step at or before ``t`` (1.0 before the first step), or ``qty_scale`` when there
        are no steps.
        """
        starts, scales = self.qty_scale_schedule()
        return scales[np.searchsorted(starts, np.asarray(t_us_B, dtype=np.int64).reshape(-1), side="right")]


@dataclass(frozen=True)
class QtyScale:
    """A trade-size normaliser and the time range it was fitted on."""

    value: float
    """Median trade size of the whole range: the normaliser from the range's end on."""
    fitted_on: TimeRange
    n_trades: int
    steps: tuple[tuple[int, float], ...] = ()
    """The expanding fit: ``(c, median of the range's trades before c)`` per checkpoint ``c``, the last
    one being ``(fitted_on.end_us, value)``; a checkpoint with no trade before it is left out."""


FIRST_CHECKPOINT_US: Final = 60 * US_PER_SECOND
"""The expanding qty_scale's first checkpoint, this long after its range's start; each next one doubles it."""


def fit_qty_scale(ts_us_N: npt.ArrayLike, qty_N: npt.ArrayLike, fit_range: TimeRange) -> QtyScale:
    """Fit the median trade size of the trades with ``fit_range.start_us <= ts_us < fit_range.end_us``.

    The result also holds the causal expanding steps inside the range (see the module docstring).
    """
    ts = np.asarray(ts_us_N, dtype=np.int64)
    qty = check_series({"qty": qty_N}, what="fit_qty_scale", positive=("qty",))["qty"]
    if ts.shape != qty.shape:
        raise FeatureInputError(f"fit_qty_scale: ts_us_N {ts.shape} and qty_N {qty.shape} differ in shape")
    inside = (ts >= fit_range.start_us) & (ts < fit_range.end_us)
    if not inside.any():
        raise FeatureInputError(f"fit_qty_scale: no trade inside {fit_range}; pick a range that has trades")
    value = float(np.median(qty[inside]))
    steps: list[tuple[int, float]] = []
    offset = FIRST_CHECKPOINT_US
    while fit_range.start_us + offset < fit_range.end_us:
        c = fit_range.start_us + offset
        before = inside & (ts < c)
        if before.any():
            steps.append((c, float(np.median(qty[before]))))
        offset *= 2
    steps.append((fit_range.end_us, value))
    return QtyScale(value, fit_range, int(inside.sum()), tuple(steps))


@dataclass(frozen=True, eq=False)
class TradeSeries:
    """A validated trade series with the per-trade features that depend on earlier trades only."""

    ts_us_N: npt.NDArray[np.int64]
    logp_N: npt.NDArray[np.float64]
    qty_N: npt.NDArray[np.float64]
    side_N: npt.NDArray[np.float64]
    interarrival_N: npt.NDArray[np.float64]
    tick_return_N: npt.NDArray[np.float64]
    intensity_N: npt.NDArray[np.float64]
    spec: TickSpec
    """The spec the per-trade features were computed with; :func:`tick_windows` uses it too."""

    @cached_property
    def price_N(self) -> npt.NDArray[np.float64]:
        """``exp(logp_N)``, the price the VWAP weighs (computed once, on first use)."""
        return np.exp(self.logp_N)

    @cached_property
    def signed_size_steps(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Feature 1 under each step of the normaliser's schedule, computed once: ``(values_X, base_J, starts_S)``.

        A query at ``t`` is in step ``j = searchsorted(starts_S, t, "right")`` (:meth:`TickSpec.qty_scale_schedule`);
        its window's trade ``k`` has feature 1 ``values_X[base_J[j] + k]``. Step j holds only the trades its
        queries' windows can reach (after its start minus the window, up to its end), so the values are about
        as many as the trades; without steps, one step over every trade. The values are numpy's
        ``side · log1p(qty / scale)``.
        """
        spec, ts = self.spec, self.ts_us_N
        starts, scales = spec.qty_scale_schedule()
        parts: list[npt.NDArray[np.float64]] = []
        base = np.empty(len(scales), np.int64)
        offset = 0
        for j, scale in enumerate(scales):
            lo = 0 if j == 0 else int(np.searchsorted(ts, starts[j - 1] - spec.window_us, side="right"))
            hi = ts.size if j == len(starts) else int(np.searchsorted(ts, starts[j] - 1, side="right"))
            hi = max(hi, lo)
            parts.append(self.side_N[lo:hi] * np.log1p(self.qty_N[lo:hi] / scale))
            base[j] = offset - lo
            offset += hi - lo
        return np.concatenate(parts), base, starts


def prepare_trades(
    ts_us_N: npt.ArrayLike,
    price_N: npt.ArrayLike,
    qty_N: npt.ArrayLike,
    side_N: npt.ArrayLike,
    spec: TickSpec = TickSpec(),
    *,
    what: str = "trades",
) -> TradeSeries:
    """Validate a trade series (sorted by time, oldest first) and precompute its per-trade features."""
    ts = np.asarray(ts_us_N)
    if ts.ndim != 1 or not np.issubdtype(ts.dtype, np.integer):
        raise FeatureInputError(f"{what}: ts_us must be a 1-D integer array (µs), got {ts.dtype} {ts.shape}")
    ts = ts.astype(np.int64, copy=False)
    cols = check_series({"price": price_N, "qty": qty_N, "side": side_N}, what=what, positive=("price", "qty"))
    if ts.shape != cols["price"].shape:
        raise FeatureInputError(f"{what}: ts_us {ts.shape} and price {cols['price'].shape} differ in shape")
    side = cols["side"]
    bad = np.flatnonzero(np.abs(side) != 1.0)
    if bad.size:
        raise FeatureInputError(f"{what}: side must be +1 or -1; row {bad[0]} has {side[bad[0]]}")
    back = np.flatnonzero(np.diff(ts) < 0)
    if back.size:
        r = int(back[0]) + 1
        raise FeatureInputError(
            f"{what}: ts_us must be non-decreasing; row {r} ({ts[r]}) is before row {r - 1} ({ts[r - 1]}). "
            "Sort trades by (ts_us, trade_id) first."
        )
    logp = np.log(cols["price"])
    dt = np.diff(ts, prepend=ts[0] - spec.window_us) if ts.size else ts
    tick_return = np.diff(logp, prepend=logp[0]) if ts.size else logp
    # Count by index, not by time, so trades sharing k's timestamp but after k are not counted.
    first_in_span = np.searchsorted(ts, ts - spec.intensity_us, side="right")
    count = np.arange(ts.size) - first_in_span + 1
    return TradeSeries(
        ts,
        logp,
        cols["qty"],
        side,
        _interarrival_feature(dt, spec),
        tick_return,
        np.log1p(count.astype(np.float64)),
        spec,
    )


def _interarrival_feature(dt_us: npt.NDArray[np.int64], spec: TickSpec) -> npt.NDArray[np.float64]:
    capped_ms = np.minimum(dt_us, spec.window_us).astype(np.float64) / _US_PER_MS
    return np.asarray(np.log1p(capped_ms) / np.log1p(spec.window_us / _US_PER_MS), dtype=np.float64)


def tick_windows(trades: TradeSeries, t_us_B: npt.ArrayLike) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Ticks blocks at query times ``t_us_B`` (any order): ``float32 [B, max_trades, 10]`` and mask.

    Block ``b`` uses the trades with ``t_us_B[b] - window_us < ts_us <= t_us_B[b]`` (and, for features
    4, 5, 8, the trades before them). Memory: ``B × max_trades × 10 × 4`` bytes plus float64 temporaries
    of 8× that; chunk very large query batches.
    """
    t = np.asarray(t_us_B)
    if t.ndim != 1 or not np.issubdtype(t.dtype, np.integer):
        raise FeatureInputError(f"t_us_B must be a 1-D integer array (µs), got {t.dtype} {t.shape}")
    t = t.astype(np.int64, copy=False)
    m = trades.spec.max_trades
    x_BX = np.empty((t.size, m * N_TICK_FEATURES), dtype=np.float32)
    mask_BM = np.empty((t.size, m), dtype=np.bool_)
    tick_windows_into(trades, t, x_BX, 0, mask_BM)
    return x_BX.reshape(t.size, m, N_TICK_FEATURES), mask_BM


def tick_windows_into(
    trades: TradeSeries,
    t_B: npt.NDArray[np.int64],
    out_BF: npt.NDArray[np.float32],
    col0: int,
    mask_BM: npt.NDArray[np.bool_],
) -> None:
    """Write :func:`tick_windows` in place, into columns ``col0 .. col0 + max_trades·10`` of ``out_BF`` and ``mask_BM``.

    ``out_BF`` is a C-contiguous ``float32 [B, F]`` state matrix; each row's columns hold one block,
    row-major ``[max_trades, 10]``.

    Two compiled passes (:mod:`rltrade.features.gather_kernels`): the window sums, then the features.
    The VWAP's log and the signed sizes' ``log1p`` are numpy's (per trade and normaliser step, once:
    :attr:`TradeSeries.signed_size_steps`). The values are bit-for-bit those of
    :func:`_window_features` on the gathered rows (the reference the streaming block uses).
    """
    spec = trades.spec
    m = spec.max_trades
    b = t_B.shape[0]
    width = m * N_TICK_FEATURES
    if not kernels.fits_state_matrix(out_BF, b, col0, width) or mask_BM.shape != (b, m):
        raise ValueError(
            f"tick_windows_into: need a C-contiguous float32 [{b}, >= {col0 + width}] matrix, got {out_BF.shape} "
            f"{out_BF.dtype}; mask {mask_BM.shape}, m={m}"
        )
    if trades.ts_us_N.size == 0:
        out_BF[:, col0 : col0 + width] = 0.0
        mask_BM[:] = False
        return
    hi_B = np.searchsorted(trades.ts_us_N, t_B, side="right")
    lo_B = np.searchsorted(trades.ts_us_N, t_B - spec.window_us, side="right")
    # The normaliser may step in time: each query reads the signed sizes of its step (computed once).
    signed_size_X, base_J, starts_S = trades.signed_size_steps
    base_B = base_J[np.searchsorted(starts_S, t_B, side="right")]
    _windows_into(trades, signed_size_X, t_B, hi_B, np.minimum(hi_B - lo_B, m), base_B, out_BF, col0, mask_BM)


def _windows_into(
    trades: TradeSeries,
    signed_size_X: npt.NDArray[np.float64],
    t_B: npt.NDArray[np.int64],
    hi_B: npt.NDArray[np.int64],
    n_B: npt.NDArray[np.int64],
    signed_base_B: npt.NDArray[np.int64],
    out_BF: npt.NDArray[np.float32],
    col0: int,
    mask_BM: npt.NDArray[np.bool_],
) -> None:
    """Run the two compiled passes over ``trades``' arrays; window ``b`` is the ``n_B[b]`` trades before ``hi_B[b]``.

    Trade ``k`` of window ``b`` has feature 1 ``signed_size_X[signed_base_B[b] + k]``.
    Shared by :func:`tick_windows_into` (a whole series) and :meth:`TickStream.features_at` (one window).
    """
    m = mask_BM.shape[1]
    total_B, pq_B, high_B, low_B = kernels.tick_window_sums(hi_B, n_B, m, trades.logp_N, trades.qty_N, trades.price_N)
    safe_total_B = np.where(total_B > 0, total_B, 1.0)
    kernels.tick_windows_into(
        t_B,
        hi_B,
        n_B,
        float(trades.spec.window_us),
        trades.ts_us_N,
        trades.logp_N,
        trades.qty_N,
        trades.side_N,
        signed_size_X,
        signed_base_B,
        trades.interarrival_N,
        trades.tick_return_N,
        trades.intensity_N,
        total_B,
        np.log(np.where(total_B > 0, pq_B / safe_total_B, 1.0)),
        high_B,
        low_B,
        out_BF,
        col0,
        mask_BM,
    )


def _window_features(
    t_B: npt.NDArray[np.int64],
    valid_BM: npt.NDArray[np.bool_],
    ts_BM: npt.NDArray[np.int64],
    logp_BM: npt.NDArray[np.float64],
    qty_BM: npt.NDArray[np.float64],
    side_BM: npt.NDArray[np.float64],
    interarrival_BM: npt.NDArray[np.float64],
    tick_return_BM: npt.NDArray[np.float64],
    intensity_BM: npt.NDArray[np.float64],
    qty_scale_B: npt.NDArray[np.float64],
    spec: TickSpec,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Compute the 10 features from gathered rows (most recent first); shared by batch and stream."""
    w = valid_BM.astype(np.float64)
    qty = qty_BM * w
    signed = side_BM * qty
    total_qty_B = qty.sum(axis=1)
    safe_total_B = np.where(total_qty_B > 0, total_qty_B, 1.0)
    # Rows run newest → oldest, so "from the oldest up to k" is a reversed cumulative sum.
    cum_signed_BM = np.cumsum(signed[:, ::-1], axis=1)[:, ::-1] / safe_total_B[:, None]
    price_BM = np.exp(logp_BM)
    log_vwap_B = np.log(np.where(total_qty_B > 0, (price_BM * qty).sum(axis=1) / safe_total_B, 1.0))
    high_B = np.where(valid_BM, logp_BM, -np.inf).max(axis=1)
    low_B = np.where(valid_BM, logp_BM, np.inf).min(axis=1)
    span_B = high_B - low_B
    has_range_B = np.isfinite(span_B) & (span_B > 0)
    range_pos_BM = np.where(
        has_range_B[:, None],
        2.0 * (logp_BM - low_B[:, None]) / np.where(has_range_B, span_B, 1.0)[:, None] - 1.0,
        0.0,
    )
    x = np.stack(
        [
            logp_BM - logp_BM[:, :1],
            side_BM * np.log1p(qty_BM / qty_scale_B[:, None]),
            side_BM,
            (t_B[:, None] - ts_BM).astype(np.float64) / spec.window_us,
            interarrival_BM,
            tick_return_BM,
            cum_signed_BM,
            logp_BM - log_vwap_B[:, None],
            intensity_BM,
            range_pos_BM,
        ],
        axis=-1,
    )
    x[~valid_BM] = 0.0
    return x.astype(np.float32), valid_BM


class TickStream:
    """Streaming ticks block: feed trades in time order with :meth:`update`, read :meth:`features_at`.

    Keeps the last ``max_trades`` trades (with their per-trade features) in a preallocated ring buffer
    and the timestamps of the last ``intensity_us`` for the burst counter, so memory is bounded and an
    update is O(1) amortised. ``features_at(t)`` equals ``tick_windows`` at ``t`` on the same series.
    """

    def __init__(self, spec: TickSpec = TickSpec()) -> None:
        self.spec = spec
        m = spec.max_trades
        self._ts_M = np.zeros(m, dtype=np.int64)
        self._cols_KM = np.zeros((6, m), dtype=np.float64)  # logp, qty, side, interarrival, tick_return, intensity
        self._n_seen = 0
        self._last_ts: int | None = None
        self._last_logp = 0.0
        self._recent_ts: deque[int] = deque()

    @property
    def n_seen(self) -> int:
        """The number of trades fed in."""
        return self._n_seen

    def update(self, ts_us: int, price: float, qty: float, side: int) -> None:
        """Add one trade; ``ts_us`` must not be earlier than the previous trade's."""
        # Scalar math (not numpy) keeps an update at a few µs; same formulas as prepare_trades.
        if not (math.isfinite(price) and price > 0 and math.isfinite(qty) and qty > 0 and side in (1, -1)):
            raise FeatureInputError(
                f"TickStream: bad trade #{self._n_seen} at ts_us={ts_us}: price={price}, qty={qty}, side={side} "
                "(need price > 0, qty > 0, side ±1)"
            )
        first = self._last_ts is None
        if self._last_ts is not None and ts_us < self._last_ts:
            raise FeatureInputError(
                f"TickStream: trade #{self._n_seen} at ts_us={ts_us} is before the previous one ({self._last_ts})"
            )
        window = self.spec.window_us
        logp = math.log(price)
        dt = window if self._last_ts is None else ts_us - self._last_ts
        self._recent_ts.append(ts_us)
        while self._recent_ts[0] <= ts_us - self.spec.intensity_us:
            self._recent_ts.popleft()
        i = self._n_seen % self.spec.max_trades
        self._ts_M[i] = ts_us
        self._cols_KM[:, i] = (
            logp,
            qty,
            float(side),
            math.log1p(min(dt, window) / _US_PER_MS) / math.log1p(window / _US_PER_MS),
            0.0 if first else logp - self._last_logp,
            math.log1p(len(self._recent_ts)),
        )
        self._n_seen += 1
        self._last_ts = ts_us
        self._last_logp = logp

    def features_at(self, t_us: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        """Return the block at ``t_us`` (``>=`` the last trade fed): ``float32 [max_trades, 10]`` and mask.

        The window's trades are copied out of the ring buffer oldest first and run through the batch
        gather's two compiled passes (:func:`_windows_into`, with numpy's ``exp``, ``log`` and ``log1p``), so
        the values are bit for bit :func:`_window_features` on the buffer's rows, at about half its cost for
        one window (~40 numpy calls on ``[1, max_trades]`` arrays).
        """
        if self._last_ts is not None and t_us < self._last_ts:
            raise FeatureInputError(
                f"TickStream.features_at({t_us}): a trade at {self._last_ts} was already fed; "
                "a stream can only be read at or after its latest trade"
            )
        m = self.spec.max_trades
        n_buf = min(self._n_seen, m)
        newest_first = (self._n_seen - 1 - np.arange(n_buf)) % m
        # Trades are in time order, so the in-window ones are a prefix of the newest-first order.
        n = int(np.count_nonzero(self._ts_M[newest_first] > t_us - self.spec.window_us))
        x_1X = np.empty((1, m * N_TICK_FEATURES), dtype=np.float32)
        mask_1M = np.empty((1, m), dtype=np.bool_)
        if n == 0:
            x_1X[:] = 0.0
            mask_1M[:] = False
            return x_1X.reshape(m, N_TICK_FEATURES), mask_1M[0]
        oldest_first = newest_first[:n][::-1]
        logp, qty, side, interarrival, tick_return, intensity = self._cols_KM[:, oldest_first]
        window = TradeSeries(self._ts_M[oldest_first], logp, qty, side, interarrival, tick_return, intensity, self.spec)
        one = np.array([n], dtype=np.int64)
        signed_size = side * np.log1p(qty / self.spec.qty_scale_at([t_us])[0])
        zero = np.zeros(1, dtype=np.int64)
        _windows_into(window, signed_size, np.array([t_us], np.int64), one, one, zero, x_1X, 0, mask_1M)
        return x_1X.reshape(m, N_TICK_FEATURES), mask_1M[0]
