"""Per-bar channels of one bar series and their extraction into fixed-length state windows.

Two steps, so that the expensive part runs once per series and the per-state part is a gather:

1. :func:`compute_bar_channels` precomputes, over the whole series, the log prices and four per-bar
   channels (relative log volume and three TA-Lib indicators). Every value at bar ``i`` uses bars
   ``0..i`` only (the TA-Lib indicators are recursive, so they depend on *all* earlier bars, never on
   later ones).
2. :func:`bar_windows` gathers, for a batch of "last closed bar" indices, the ``W`` bars ending at that
   bar (oldest first) as a ``float32 [B, W, 8]`` tensor plus a ``[B, W]`` mask; :func:`bar_windows_into`
   writes the same values straight into rows of a state matrix (one compiled pass over the interleaved
   per-bar arrays, :mod:`rltrade.features.gather_kernels`).

The eight channels (:data:`BAR_CHANNEL_NAMES`, described in :data:`BAR_CHANNEL_DESCRIPTIONS`):

====  ===============  ===================================================================================
 #    name             value for the bar in row ``j`` of a window ending at bar ``e``
====  ===============  ===================================================================================
 0    log_open_rel     ``log(open_j / c_ref)``
 1    log_high_rel     ``log(high_j / c_ref)``
 2    log_low_rel      ``log(low_j / c_ref)``
 3    log_close_rel    ``log(close_j / c_ref)``; 0 in the last row by construction
 4    log_volume_rel   ``log((v_j + ε_j) / (m_j + ε_j))``, ``m_j`` the median volume of bars
                       ``j-w+1..j`` (fewer at the series start), ``ε_j = volume_eps_frac·m_j + 1e-12``
 5    rsi              ``(RSI(close, rsi_period)_j − 50) / 50`` in [-1, 1]
 6    macd_hist_atr    ``MACD histogram_j / max(ATR_j, atr_floor_frac·close_j)``
 7    atr_close        ``ATR(atr_period)_j / close_j``
====  ===============  ===================================================================================

``c_ref`` is the close of the **last** bar of the window (bar ``e``), not of the current price: a window
whose last bar is a closed 1h bar therefore looks identical all hour long, until the next 1h bar
closes. That is what lets a per-timeframe CNN be cached by bar close (SPEC §2.2, §2.3).

Channels 4-7 are clipped to ``±spec.clip`` so that degenerate data (a run of zero-volume bars, a flat
price with ATR → 0) can never produce huge values, NaN or inf.

Warm-up: TA-Lib leaves the first bars of each indicator undefined (NaN): there the indicator channels
are 0 and the bar's ``valid`` flag is False (with the defaults, bars ``0..32``, the MACD histogram
being the last to start). A window row is masked when its bar is before the series start (all eight
channels 0) or in the warm-up (real prices and volume, zero indicators).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl
import talib

from rltrade.features import gather_kernels as kernels

BAR_CHANNEL_NAMES: Final = (
    "log_open_rel",
    "log_high_rel",
    "log_low_rel",
    "log_close_rel",
    "log_volume_rel",
    "rsi",
    "macd_hist_atr",
    "atr_close",
)
BAR_CHANNEL_DESCRIPTIONS: Final[dict[str, str]] = {
    "log_open_rel": "log(open / c_ref), c_ref = close of the last bar of the window",
    "log_high_rel": "log(high / c_ref)",
    "log_low_rel": "log(low / c_ref)",
    "log_close_rel": "log(close / c_ref); exactly 0 in the window's last row",
    "log_volume_rel": "log of volume over its causal rolling median (volume_window bars ending at the bar)",
    "rsi": "(RSI(rsi_period) - 50) / 50, in [-1, 1]",
    "macd_hist_atr": "MACD(fast, slow, signal) histogram divided by ATR(atr_period)",
    "atr_close": "ATR(atr_period) / close",
}
N_BAR_CHANNELS: Final = len(BAR_CHANNEL_NAMES)
DEFAULT_WINDOW: Final = 300
_N_PRICE: Final = 4


class FeatureInputError(ValueError):
    """Input arrays of a feature kernel are malformed (shape, dtype, NaN, non-positive price, ...)."""


@dataclass(frozen=True)
class BarChannelSpec:
    """Parameters of the per-bar channels (defaults as in SPEC §2.2)."""

    volume_window: int = 300
    """Bars in the causal rolling median that volume is divided by (bars ``i-w+1..i``)."""
    rsi_period: int = 14
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    atr_period: int = 14
    volume_eps_frac: float = 1e-3
    """ε relative to the rolling median: a zero-volume bar scores ``log(1e-3) ≈ -6.9``, not -inf."""
    atr_floor_frac: float = 1e-6
    """Floor of the MACD denominator, relative to close (0.01 bp), so a flat price never divides by 0."""
    clip: float = 10.0
    """Channels 4-7 are clipped to ``[-clip, clip]``."""

    def __post_init__(self) -> None:
        """Check that every window and period is >= 1 and that MACD's fast period is below its slow one."""
        for name in ("volume_window", "rsi_period", "macd_fast", "macd_slow", "macd_signal", "atr_period"):
            if getattr(self, name) < 1:
                raise ValueError(f"BarChannelSpec.{name} must be >= 1, got {getattr(self, name)}")
        if self.macd_fast >= self.macd_slow:
            raise ValueError(f"BarChannelSpec: macd_fast ({self.macd_fast}) must be < macd_slow ({self.macd_slow})")
        if not (self.volume_eps_frac > 0 and self.atr_floor_frac > 0 and self.clip > 0):
            raise ValueError("BarChannelSpec: volume_eps_frac, atr_floor_frac and clip must be > 0")

    @property
    def warmup_bars(self) -> int:
        """Bars at the series start whose indicators are undefined (TA-Lib lookback of the slowest one)."""
        return max(self.rsi_period, self.atr_period, self.macd_slow + self.macd_signal - 2)

    @property
    def history_bars(self) -> int:
        """Bars after which a computation started mid-series agrees with the full-series one (to 1e-6).

        The rolling median fills after ``volume_window`` bars; RSI, ATR and the MACD EMAs are recursive
        and forget their starting point geometrically (to 1e-6 within ~10 periods). A streaming builder
        that recomputes on the last ``history_bars + W`` bars therefore matches the batch windows.
        """
        return max(self.volume_window, 10 * max(self.rsi_period, self.atr_period, self.macd_slow))


@dataclass(frozen=True, eq=False)
class BarChannels:
    """Precomputed per-bar arrays of one bar series (see :func:`compute_bar_channels`)."""

    log_ohlc_T4: npt.NDArray[np.float64]
    """log(open, high, low, close), float64 so that the relative channels lose no precision."""
    per_bar_T4: npt.NDArray[np.float32]
    """Channels 4-7 (log_volume_rel, rsi, macd_hist_atr, atr_close); 0 where not valid."""
    valid_T: npt.NDArray[np.bool_]
    """False in the indicator warm-up."""
    spec: BarChannelSpec

    def __post_init__(self) -> None:
        """Hold the arrays C-contiguous: the gather kernel reads them as flat per-bar runs (no copy if they are)."""
        for name in ("log_ohlc_T4", "per_bar_T4", "valid_T"):
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name)))

    @property
    def n_bars(self) -> int:
        """The number of bars the channels cover."""
        return int(self.valid_T.shape[0])


def check_series(
    columns: dict[str, npt.ArrayLike],
    *,
    what: str,
    positive: tuple[str, ...],
    nonnegative: tuple[str, ...] = (),
) -> dict[str, npt.NDArray[np.float64]]:
    """Return ``columns`` as equally long 1-D float64 arrays; raise :class:`FeatureInputError` on bad rows.

    ``positive`` columns must be finite and > 0, ``nonnegative`` ones finite and >= 0; the error names
    ``what``, the column and the first bad row.
    """
    out = {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}
    lengths = {name: a.shape for name, a in out.items()}
    if any(len(s) != 1 for s in lengths.values()) or len({s[0] for s in lengths.values()}) > 1:
        raise FeatureInputError(f"{what}: columns must be 1-D and equally long, got shapes {lengths}")
    for name, a in out.items():
        if name in positive:
            bad = ~(np.isfinite(a) & (a > 0))
            rule = "finite and > 0"
        elif name in nonnegative:
            bad = ~(np.isfinite(a) & (a >= 0))
            rule = "finite and >= 0"
        else:
            bad = ~np.isfinite(a)
            rule = "finite"
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise FeatureInputError(
                f"{what}: {name} must be {rule}; row {row} has {a[row]!r} ({int(bad.sum())} bad row(s)). "
                "Clean or validate the data (rltrade.data) before computing features."
            )
    return out


def compute_bar_channels(
    open_T: npt.ArrayLike,
    high_T: npt.ArrayLike,
    low_T: npt.ArrayLike,
    close_T: npt.ArrayLike,
    volume_T: npt.ArrayLike,
    spec: BarChannelSpec = BarChannelSpec(),
    *,
    what: str = "bars",
) -> BarChannels:
    """Precompute the per-bar arrays of one bar series, oldest bar first.

    Causal: every array value at bar ``i`` depends on bars ``0..i`` only. ``what`` names the series in
    error messages (e.g. ``"ETHUSDT 1m"``).
    """
    cols = check_series(
        {"open": open_T, "high": high_T, "low": low_T, "close": close_T, "volume": volume_T},
        what=what,
        positive=("open", "high", "low", "close"),
        nonnegative=("volume",),
    )
    o, h, lo, c, v = (cols[k] for k in ("open", "high", "low", "close", "volume"))
    _check_bars(o, h, lo, c, what=what)
    log_ohlc_T4 = np.log(np.stack([o, h, lo, c], axis=1))
    if c.shape[0] == 0:
        return BarChannels(log_ohlc_T4, np.zeros((0, 4), np.float32), np.zeros(0, np.bool_), spec)
    per_bar_T4, valid_T = _per_bar_rows(h, lo, c, _log_volume_rel(v, spec), spec, first=0)
    return BarChannels(log_ohlc_T4, per_bar_T4, valid_T, spec)


def extend_bar_channels(
    prev: BarChannels,
    ohlcv_L5: npt.NDArray[np.float64],
    new: int,
    *,
    keep: int | None = None,
    what: str = "bars",
) -> BarChannels:
    """``prev`` moved on by ``new`` bars: the new bars' rows appended, the oldest rows dropped beyond ``keep``.

    ``keep`` (default ``prev.n_bars``: the length stays) caps the result's length; a ``prev`` shorter than
    ``keep`` grows (a live series still filling its kept tail), so ``new < keep`` is what is required.

    ``ohlcv_L5`` holds the series' newest ``L = history_bars + 1 + new`` bars, the ``new`` ones last (OHLCV
    columns). Only the new rows are computed: each one's volume median over its own ``volume_window`` bars
    (exactly the full series' median: ``history_bars ≥ volume_window``) and its recursive indicators (RSI,
    MACD, ATR) started at the first of the ``L`` bars, ``history_bars + 1`` bars before the oldest new one.
    That is the warm-up of the oldest row that a window of ``prev.n_bars − history_bars − 1`` bars reads
    when :func:`compute_bar_channels` recomputes all ``prev.n_bars`` bars, so both agree with the full
    series' channels within the same 1e-6 (:attr:`BarChannelSpec.history_bars`), at a fixed cost instead of
    one that grows with the window. Causal like :func:`compute_bar_channels`: each row reads its bar and the
    bars before it.
    """
    spec = prev.spec
    need = spec.history_bars + 1 + new
    cap = prev.n_bars if keep is None else keep
    if not 0 < new < cap or prev.n_bars > cap or ohlcv_L5.shape != (need, 5):
        raise ValueError(
            f"{what}: extend_bar_channels needs 0 < new < {cap}, at most {cap} bars in prev (got "
            f"{prev.n_bars}) and the newest {need} bars, got new={new} and {ohlcv_L5.shape[0]} bars"
        )
    drop = max(prev.n_bars + new - cap, 0)
    fresh = ohlcv_L5[-new:]
    if not (np.isfinite(fresh).all() and (fresh[:, :4] > 0).all() and (fresh[:, 4] >= 0).all()):
        check_series(  # raises, naming the column and row
            {k: fresh[:, j] for j, k in enumerate(("open", "high", "low", "close", "volume"))},
            what=what,
            positive=("open", "high", "low", "close"),
            nonnegative=("volume",),
        )
    _check_bars(*(fresh[:, j] for j in range(4)), what=what)
    h, lo, c, v = (np.ascontiguousarray(ohlcv_L5[:, j]) for j in range(1, 5))
    vol_rel_N = _volume_over_median(v[-new:], trailing_medians(v, spec.volume_window, new), spec)
    per_bar_N4, valid_N = _per_bar_rows(h, lo, c, vol_rel_N, spec, first=need - new)
    log_ohlc_N4 = np.log(ohlcv_L5[-new:, :4])
    return BarChannels(
        np.concatenate([prev.log_ohlc_T4[drop:], log_ohlc_N4]),
        np.concatenate([prev.per_bar_T4[drop:], per_bar_N4]),
        np.concatenate([prev.valid_T[drop:], valid_N]),
        spec,
    )


def trailing_medians(v_L: npt.NDArray[np.float64], window: int, new: int) -> npt.NDArray[np.float64]:
    """Return the medians of the ``window`` values ending at each of the last ``new`` values of ``v_L`` (finite).

    Bit for bit ``np.median`` of each window. For one window (a live series moving on by one bar) that is
    a partition and the mean of its middle one or two values, without ``np.median``'s general machinery
    (a tenth of its cost).
    """
    if new == 1:
        lo, hi = (window - 1) // 2, window // 2
        part = np.partition(v_L[-window:], (lo, hi))
        return np.array([(part[lo] + part[hi]) / 2.0])
    windows = np.lib.stride_tricks.sliding_window_view(v_L, window)[-new:]
    return np.asarray(np.median(windows, axis=1), dtype=np.float64)


def _check_bars(
    o: npt.NDArray[np.float64],
    h: npt.NDArray[np.float64],
    lo: npt.NDArray[np.float64],
    c: npt.NDArray[np.float64],
    *,
    what: str,
) -> None:
    bad = (h < np.maximum(np.maximum(o, c), lo)) | (lo > np.minimum(o, c))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise FeatureInputError(
            f"{what}: row {row} is not a valid bar (open={o[row]}, high={h[row]}, low={lo[row]}, "
            f"close={c[row]}); high must be >= open, close, low and low <= open, close"
        )


def _per_bar_rows(
    h: npt.NDArray[np.float64],
    lo: npt.NDArray[np.float64],
    c: npt.NDArray[np.float64],
    vol_rel_N: npt.NDArray[np.float64],
    spec: BarChannelSpec,
    *,
    first: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Channels 4-7 and the valid flags of bars ``first..`` of the series ``h, lo, c``.

    The indicators run from bar 0; ``vol_rel_N`` is channel 4 of bars ``first..``.
    """
    rsi = talib.RSI(c, timeperiod=spec.rsi_period)[first:]
    _, _, hist = talib.MACD(c, fastperiod=spec.macd_fast, slowperiod=spec.macd_slow, signalperiod=spec.macd_signal)
    atr = talib.ATR(h, lo, c, timeperiod=spec.atr_period)[first:]
    per_bar_N4 = np.empty((c.shape[0] - first, 4), dtype=np.float64)
    per_bar_N4[:, 0] = vol_rel_N
    per_bar_N4[:, 1] = (rsi - 50.0) / 50.0
    per_bar_N4[:, 2] = hist[first:] / np.maximum(atr, spec.atr_floor_frac * c[first:])
    per_bar_N4[:, 3] = atr / c[first:]
    valid_N = np.asarray(np.isfinite(per_bar_N4).all(axis=1), dtype=np.bool_)
    per_bar_N4[~valid_N, 1:] = 0.0
    np.clip(per_bar_N4, -spec.clip, spec.clip, out=per_bar_N4)
    return per_bar_N4.astype(np.float32), valid_N


def bar_channels_from_frame(
    bars: pl.DataFrame, spec: BarChannelSpec = BarChannelSpec(), *, what: str = "bars"
) -> BarChannels:
    """:func:`compute_bar_channels` on a frame with BAR_SCHEMA's OHLCV columns, sorted by ``open_us``."""
    missing = [c for c in ("open", "high", "low", "close", "volume") if c not in bars.columns]
    if missing:
        raise FeatureInputError(f"{what}: missing column(s) {missing}; got {bars.columns}")
    if "open_us" in bars.columns and bars.height > 1:
        back = np.flatnonzero(np.diff(bars["open_us"].to_numpy()) <= 0)
        if back.size:
            raise FeatureInputError(
                f"{what}: open_us must be strictly increasing; row {back[0] + 1} is not after row {back[0]}"
            )
    o, h, lo, c, v = (bars[name].to_numpy() for name in ("open", "high", "low", "close", "volume"))
    return compute_bar_channels(o, h, lo, c, v, spec, what=what)


def _log_volume_rel(volume_T: npt.NDArray[np.float64], spec: BarChannelSpec) -> npt.NDArray[np.float64]:
    # min_samples=1: the first bars divide by the median of the bars seen so far, never of later ones.
    median_T = pl.Series(volume_T).rolling_median(window_size=spec.volume_window, min_samples=1).to_numpy()
    return _volume_over_median(volume_T, median_T, spec)


def _volume_over_median(
    volume_T: npt.NDArray[np.float64], median_T: npt.NDArray[np.float64], spec: BarChannelSpec
) -> npt.NDArray[np.float64]:
    """Channel 4 from each bar's volume and its rolling median: ``log((v + ε) / (m + ε))``."""
    eps_T = spec.volume_eps_frac * median_T + 1e-12
    return np.asarray(np.log((volume_T + eps_T) / (median_T + eps_T)), dtype=np.float64)


def bar_windows(
    channels: BarChannels, idx_B: npt.ArrayLike, window: int = DEFAULT_WINDOW
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Gather the ``window`` bars ending at bar ``idx_B[b]`` for each query.

    ``idx_B`` holds, per query, the index of the last *closed* bar (from the as-of alignment), or -1
    when no bar has closed yet. Row ``j`` of query ``b`` is bar ``idx_B[b] - (window - 1) + j``: rows are
    oldest first and the last row is the last closed bar. Returns

    * ``x_BWC`` float32 ``[B, window, 8]``: the channels of :data:`BAR_CHANNEL_NAMES`, relative to the
      close of bar ``idx_B[b]``; rows before the series start (and every row when ``idx_B[b] == -1``)
      are 0;
    * ``mask_BW`` bool ``[B, window]``: True where the row is a real bar past the indicator warm-up.

    A value for query ``b`` uses bars ``<= idx_B[b]`` only.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    idx = np.asarray(idx_B)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise FeatureInputError(f"idx_B must be a 1-D integer array, got dtype {idx.dtype} shape {idx.shape}")
    idx = idx.astype(np.int64, copy=False)
    x_BWC = np.empty((idx.shape[0], window, N_BAR_CHANNELS), dtype=np.float32)
    mask_BW = np.empty((idx.shape[0], window), dtype=np.bool_)
    bar_windows_into(channels, idx, x_BWC.reshape(idx.shape[0], window * N_BAR_CHANNELS), 0, mask_BW)
    return x_BWC, mask_BW


def bar_windows_into(
    channels: BarChannels,
    idx_B: npt.NDArray[np.int64],
    out_BF: npt.NDArray[np.float32],
    col0: int,
    mask_BW: npt.NDArray[np.bool_],
) -> None:
    """Write :func:`bar_windows` in place, into columns ``col0 .. col0 + W·8`` of ``out_BF`` and ``mask_BW``.

    ``out_BF`` is a C-contiguous ``float32 [B, F]`` state matrix; each row's columns hold one window,
    row-major ``[W, 8]``; ``mask_BW`` is ``bool [B, W]``.

    One compiled pass per window (:func:`rltrade.features.gather_kernels.bar_windows_into`), reading the
    interleaved per-bar arrays ``log_ohlc_T4`` and ``per_bar_T4``. ``idx_B`` is int64 in ``[-1, n_bars)``
    (:func:`bar_windows` checks it); with no bars at all every row is 0 and masked.
    """
    b, w = mask_BW.shape
    width = w * N_BAR_CHANNELS
    if not kernels.fits_state_matrix(out_BF, b, col0, width) or idx_B.shape != (b,):
        raise ValueError(
            f"bar_windows_into: need a C-contiguous float32 [{b}, >= {col0 + width}] matrix, got {out_BF.shape} "
            f"{out_BF.dtype}; idx {idx_B.shape}, mask {(b, w)}"
        )
    n = channels.n_bars
    bad = (idx_B < -1) | (idx_B >= n)
    if bad.any():  # the kernel does not check bounds
        i = int(np.flatnonzero(bad)[0])
        raise FeatureInputError(f"idx_B[{i}] = {idx_B[i]} is outside [-1, {n - 1}] for a series of {n} bars")
    if channels.n_bars == 0:
        out_BF[:, col0 : col0 + width] = 0.0
        mask_BW[:] = False
        return
    kernels.bar_windows_into(channels.log_ohlc_T4, channels.per_bar_T4, channels.valid_T, idx_B, out_BF, col0, mask_BW)
