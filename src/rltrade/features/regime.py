"""Market regime: 10 continuous features per 1m bar and a rule-based four-regime classifier.

:func:`compute_regime_features` computes, over a whole 1m series of the traded symbol (ETH) and the
reference (BTC) on the same minute grid, 10 features per bar. The value at bar ``i`` uses bars
``0..i`` only, so at query time ``t`` one reads the row of the last bar *closed* at or before ``t``
(:func:`regime_features_at`, given that index from the as-of alignment). ``r_j = log(c_j / c_{j-1})``
is the 1m log return; ``L`` windows below end at bar ``i`` (bars ``i-L+1..i``).

==  ================  ===========================================================================
 #  name              value at bar ``i`` (defaults of :class:`RegimeSpec`)
==  ================  ===========================================================================
 0  adx               TA-Lib ``ADX(high, low, close, adx_period=60) / 100``, in [0, 1]
 1  trend_tstat       ``log(c_i / c_{i-L}) / (σ_L · √L)``, ``σ_L`` the RMS of the ``L = trend_window``
                      (1440, one day) returns: the drift's t-statistic, ~N(0, 1) for a random walk
 2  efficiency_ratio  Kaufman: ``|log(c_i / c_{i-L})| / Σ|r_j|`` over the same ``L``, in [0, 1]
 3  realised_vol      RMS of the last ``vol_window`` (60) returns, annualised (× √bars_per_year)
 4  vol_percentile    share of earlier realised_vol values, sampled every ``pct_step`` (60) bars over
                      the last ``pct_lookback`` (7 days) bars, below the current one (ties count ½)
 5  eth_btc_corr      TA-Lib ``CORREL`` of ETH and BTC 1m log returns over ``corr_window`` (240)
 6  eth_btc_beta      beta of ETH's simple returns on BTC's, ``cov(eth, btc) / var(btc)`` over
                      ``corr_window`` (TA-Lib ``BETA(btc_close, eth_close)``)
 7  range_position    close within the ``range_window`` (240) low/high: -1 at the low, +1 at the high
 8  volume_zscore     z-score of ``log(volume + volume_eps)`` over ``volume_window`` (1440) bars
 9  return_autocorr   lag-1 autocorrelation of returns over ``trend_window`` (negative: mean reverting)
==  ================  ===========================================================================

Degenerate windows (flat price, zero volume variance) give the neutral value 0; all features are
clipped to ``±clip``, so they are never NaN or inf. ``valid`` is False during the warm-up
(:attr:`RegimeSpec.warmup_bars`: every lookback filled and ``pct_min_samples`` percentile samples).

Classifier (:func:`classify_regimes`) with the fixed thresholds of :class:`RegimeThresholds`:

1. ``VOLATILE`` if ``vol_percentile > volatile_pct`` (0.8: the last hour is more volatile than 80 % of
   the hours of the past week);
2. else ``TREND_UP`` / ``TREND_DOWN`` if ``|trend_tstat| > trend_tstat`` (1.0: the last day moved more
   than one daily standard deviation) and ``efficiency_ratio > trend_efficiency`` (0.03, about the
   1/√L a random walk scores over L = 1440 bars, so a move made of a few jumps is not a trend), by the
   sign of ``trend_tstat``;
3. else ``RANGE``.

The thresholds are round numbers chosen by hand and checked against the true regimes of the
synthetic market (``rltrade.data.synthetic``), whose trends are weak (drift 0.03 σ per minute, so a
one-day t-statistic of about 1.1): they are not fitted on any real period, so the classifier may
label any period, training or evaluation, without a fitted time range to respect.

Bars that are not valid get :data:`REGIME_UNKNOWN` (-1).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt
import talib

from rltrade.features.bar_channels import FeatureInputError, check_series
from rltrade.types import Regime

REGIME_FEATURE_NAMES: Final = (
    "adx",
    "trend_tstat",
    "efficiency_ratio",
    "realised_vol",
    "vol_percentile",
    "eth_btc_corr",
    "eth_btc_beta",
    "range_position",
    "volume_zscore",
    "return_autocorr",
)
N_REGIME_FEATURES: Final = len(REGIME_FEATURE_NAMES)
REGIME_UNKNOWN: Final = -1
_F: Final = MappingProxyType({name: i for i, name in enumerate(REGIME_FEATURE_NAMES)})


@dataclass(frozen=True)
class RegimeSpec:
    """Lookbacks of the regime features, in bars of the input series (1m by default)."""

    adx_period: int = 60
    trend_window: int = 1440
    vol_window: int = 60
    pct_step: int = 60
    pct_lookback: int = 7 * 1440
    pct_min_samples: int = 24
    corr_window: int = 240
    range_window: int = 240
    volume_window: int = 1440
    volume_eps: float = 1e-8
    bars_per_year: float = 365.25 * 1440
    """Annualisation of realised_vol (crypto trades around the clock)."""
    clip: float = 10.0

    def __post_init__(self) -> None:
        """Check that every period, window and step is >= 2 and that the percentile lookback holds enough samples."""
        for name in ("adx_period", "trend_window", "vol_window", "pct_step", "corr_window", "range_window"):
            if getattr(self, name) < 2:
                raise ValueError(f"RegimeSpec.{name} must be >= 2, got {getattr(self, name)}")
        if self.volume_window < 2 or not 1 <= self.pct_min_samples <= self.pct_lookback // self.pct_step:
            raise ValueError(
                f"RegimeSpec: need volume_window >= 2 and 1 <= pct_min_samples <= pct_lookback // pct_step, "
                f"got {self.volume_window}, {self.pct_min_samples}, {self.pct_lookback} // {self.pct_step}"
            )

    @property
    def warmup_bars(self) -> int:
        """Index of the first valid bar: every feature's lookback is filled."""
        return max(
            2 * self.adx_period - 1,  # TA-Lib ADX lookback
            self.trend_window + 1,  # autocorrelation pairs need r_{j-1}, r_0 is undefined
            self.vol_window + self.pct_step * self.pct_min_samples,
            self.corr_window,
            self.range_window - 1,
            self.volume_window - 1,
        )

    @property
    def history_bars(self) -> int:
        """Bars after which a computation started mid-series agrees with the full-series one (to 1e-5).

        The volatility percentile needs its full ``pct_lookback`` of samples; ADX is recursive (Wilder)
        and forgets its starting point within ~20 periods.
        """
        return max(self.warmup_bars, self.pct_lookback + self.vol_window, 20 * self.adx_period)


@dataclass(frozen=True)
class RegimeThresholds:
    """Fixed classifier thresholds (see the module docstring for the rules)."""

    volatile_pct: float = 0.8
    trend_efficiency: float = 0.03
    trend_tstat: float = 1.0


@dataclass(frozen=True, eq=False)
class RegimeFeatures:
    """Per-bar regime features of one series."""

    values_TF: npt.NDArray[np.float32]
    """``[T, 10]`` in :data:`REGIME_FEATURE_NAMES` order; 0 where not valid."""
    valid_T: npt.NDArray[np.bool_]
    spec: RegimeSpec


def compute_regime_features(
    high_T: npt.ArrayLike,
    low_T: npt.ArrayLike,
    close_T: npt.ArrayLike,
    volume_T: npt.ArrayLike,
    ref_close_T: npt.ArrayLike,
    spec: RegimeSpec = RegimeSpec(),
    *,
    what: str = "regime bars",
    last_only: bool = False,
) -> RegimeFeatures:
    """Regime features of every bar; the row of bar ``i`` uses bars ``0..i`` of both series only.

    ``ref_close_T`` is the reference symbol's close on the same bar grid (same open times, same length);
    aligning the two series is the caller's job. ``last_only``: the last bar's row only (a one-row result,
    the same values): the live builder's update, which skips the volatility percentile of every other bar
    (K passes over the series, most of the work).
    """
    cols = check_series(
        {"high": high_T, "low": low_T, "close": close_T, "volume": volume_T, "ref_close": ref_close_T},
        what=what,
        positive=("high", "low", "close", "ref_close"),
        nonnegative=("volume",),
    )
    raw_TF = _raw_features(
        cols["high"], cols["low"], cols["close"], cols["volume"], cols["ref_close"], spec, last_only=last_only
    )
    n = raw_TF.shape[0]
    valid_T = np.arange(n) >= spec.warmup_bars
    if last_only:
        raw_TF, valid_T = raw_TF[-1:], valid_T[-1:]
    # NaN here is a degenerate window (zero variance) past the warm-up, or the warm-up itself.
    values = np.clip(np.nan_to_num(raw_TF, nan=0.0, posinf=0.0, neginf=0.0), -spec.clip, spec.clip)
    values[~valid_T] = 0.0
    return RegimeFeatures(values.astype(np.float32), valid_T, spec)


def _raw_features(
    h: npt.NDArray[np.float64],
    lo: npt.NDArray[np.float64],
    c: npt.NDArray[np.float64],
    v: npt.NDArray[np.float64],
    ref: npt.NDArray[np.float64],
    spec: RegimeSpec,
    *,
    last_only: bool = False,
) -> npt.NDArray[np.float64]:
    """``[T, 10]`` features, NaN where a lookback is not filled or a window is degenerate.

    ``last_only``: the volatility percentile of the last row only (NaN in the others).
    """
    n = c.shape[0]
    raw_TF = np.full((n, N_REGIME_FEATURES), np.nan)
    if n == 0:
        return raw_TF
    logc = np.log(c)
    r = np.diff(logc, prepend=np.nan)  # r[0] is undefined; TA-Lib skips leading NaNs
    r_ref = np.diff(np.log(ref), prepend=np.nan)
    lt = spec.trend_window

    raw_TF[:, _F["adx"]] = talib.ADX(h, lo, c, timeperiod=spec.adx_period) / 100.0
    move = logc - _shift(logc, lt)
    sigma_l = np.sqrt(_sum_of_squares(r, lt) / lt)
    raw_TF[:, _F["trend_tstat"]] = _ratio(move, sigma_l * np.sqrt(lt))
    raw_TF[:, _F["efficiency_ratio"]] = _ratio(np.abs(move), talib.SUM(np.abs(r), timeperiod=lt))
    vol = np.sqrt(_sum_of_squares(r, spec.vol_window) / spec.vol_window)
    raw_TF[:, _F["realised_vol"]] = vol * np.sqrt(spec.bars_per_year)
    if last_only:
        raw_TF[-1, _F["vol_percentile"]] = _last_lagged_percentile(vol, spec)
    else:
        raw_TF[:, _F["vol_percentile"]] = _lagged_percentile(vol, spec)
    raw_TF[:, _F["eth_btc_corr"]] = talib.CORREL(r, r_ref, timeperiod=spec.corr_window)
    # TA-Lib's BETA(x, y) is cov(x, y) / var(x) of simple returns, i.e. y regressed on x: BTC goes first.
    raw_TF[:, _F["eth_btc_beta"]] = talib.BETA(ref, c, timeperiod=spec.corr_window)
    high_l = talib.MAX(h, timeperiod=spec.range_window)
    low_l = talib.MIN(lo, timeperiod=spec.range_window)
    raw_TF[:, _F["range_position"]] = _ratio(2.0 * (c - low_l), high_l - low_l) - 1.0
    logv = np.log(v + spec.volume_eps)
    mean_v = talib.SMA(logv, timeperiod=spec.volume_window)
    std_v = talib.STDDEV(logv, timeperiod=spec.volume_window, nbdev=1.0)
    raw_TF[:, _F["volume_zscore"]] = _ratio(logv - mean_v, std_v)
    raw_TF[:, _F["return_autocorr"]] = talib.CORREL(r, _shift(r, 1), timeperiod=lt)
    return raw_TF


def _sum_of_squares(r: npt.NDArray[np.float64], window: int) -> npt.NDArray[np.float64]:
    """Return the rolling sum of ``r²`` over ``window`` bars (NaN until filled), never below 0.

    TA-Lib's SUM is a running sum (the new value added, the oldest subtracted): after a stretch of zero
    returns it can round to a tiny negative number, whose square root would be NaN (and a warning) where
    the volatility is 0.
    """
    return np.maximum(talib.SUM(r * r, timeperiod=window), 0.0)


def _shift(x: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.float64]:
    """``x`` delayed by ``k`` bars (NaN for the first ``k``)."""
    out = np.full_like(x, np.nan)
    if k < x.shape[0]:
        out[k:] = x[: x.shape[0] - k]
    return out


def _ratio(num: npt.NDArray[np.float64], den: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``num / den`` where ``den > 0``, NaN elsewhere (resolved to the neutral 0 by the caller)."""
    ok = den > 0
    return np.where(ok, num / np.where(ok, den, 1.0), np.nan)


def _lagged_percentile(vol_T: npt.NDArray[np.float64], spec: RegimeSpec) -> npt.NDArray[np.float64]:
    """Share of ``vol[i - step·k]`` (k = 1..K, defined only) below ``vol[i]``, ties counting ½."""
    n = vol_T.shape[0]
    below_T = np.zeros(n, dtype=np.float64)
    count_T = np.zeros(n, dtype=np.int64)
    # One pass per lag over contiguous slices: K passes of O(T), no [T, K] temporary.
    for lag in _percentile_lags(spec, n):
        past, cur = vol_T[: n - lag], vol_T[lag:]
        below_T[lag:] += (past < cur) + 0.5 * (past == cur)
        count_T[lag:] += np.isfinite(past)
    enough = count_T >= spec.pct_min_samples
    return np.where(enough, below_T / np.maximum(count_T, 1), np.nan)


def _percentile_lags(spec: RegimeSpec, n: int) -> npt.NDArray[np.int64]:
    """Return the lags ``pct_step · k`` (k = 1..K) of the volatility percentile that ``n`` bars hold."""
    lags = spec.pct_step * np.arange(1, spec.pct_lookback // spec.pct_step + 1, dtype=np.int64)
    return lags[lags < n]


def _last_lagged_percentile(vol_T: npt.NDArray[np.float64], spec: RegimeSpec) -> float:
    """:func:`_lagged_percentile` of the last row only, the same float operations in the same order."""
    n = vol_T.shape[0]
    past, cur = vol_T[n - 1 - _percentile_lags(spec, n)], vol_T[n - 1]
    terms = (past < cur) + 0.5 * (past == cur)
    below = float(np.cumsum(terms)[-1]) if terms.size else 0.0  # in lag order, as _lagged_percentile adds them
    count = int(np.isfinite(past).sum())
    return below / max(count, 1) if count >= spec.pct_min_samples else float("nan")


def regime_features_at(
    features: RegimeFeatures, idx_B: npt.ArrayLike
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Rows for the last-closed bar indices ``idx_B`` (-1: none yet): ``float32 [B, 10]`` and mask ``[B]``."""
    idx = np.asarray(idx_B)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise FeatureInputError(f"idx_B must be a 1-D integer array, got dtype {idx.dtype} shape {idx.shape}")
    n = features.valid_T.shape[0]
    bad = (idx < -1) | (idx >= n)
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        raise FeatureInputError(f"idx_B[{b}] = {idx[b]} is outside [-1, {n - 1}] for a series of {n} bars")
    has = idx >= 0
    safe = np.where(has, idx, 0)
    if n == 0:
        return np.zeros((idx.shape[0], N_REGIME_FEATURES), np.float32), np.zeros(idx.shape[0], np.bool_)
    values = np.where(has[:, None], features.values_TF[safe], np.float32(0.0))
    return values.astype(np.float32, copy=False), has & features.valid_T[safe]


def classify_regimes(
    values_F: npt.ArrayLike, valid: npt.ArrayLike, thresholds: RegimeThresholds = RegimeThresholds()
) -> npt.NDArray[np.int8]:
    """Label rows ``[..., 10]`` of regime features with :class:`~rltrade.types.Regime` values.

    Works on the per-bar ``values_TF`` (labels every bar of a period at once) as on gathered rows.
    Rows with ``valid`` False get :data:`REGIME_UNKNOWN`.
    """
    x = np.asarray(values_F, dtype=np.float64)
    ok = np.asarray(valid, dtype=np.bool_)
    if x.shape[-1:] != (N_REGIME_FEATURES,) or ok.shape != x.shape[:-1]:
        raise FeatureInputError(
            f"classify_regimes: need values [..., {N_REGIME_FEATURES}] and valid [...], got {x.shape} and {ok.shape}"
        )
    tstat = x[..., _F["trend_tstat"]]
    trending = (x[..., _F["efficiency_ratio"]] > thresholds.trend_efficiency) & (np.abs(tstat) > thresholds.trend_tstat)
    labels = np.full(x.shape[:-1], int(Regime.RANGE), dtype=np.int8)
    labels[trending & (tstat > 0)] = Regime.TREND_UP
    labels[trending & (tstat < 0)] = Regime.TREND_DOWN
    labels[x[..., _F["vol_percentile"]] > thresholds.volatile_pct] = Regime.VOLATILE
    labels[~ok] = REGIME_UNKNOWN
    return labels
