"""Block-bootstrap confidence intervals for the annualised Sharpe ratio of a per-step return series.

Per-step returns of a trading policy are serially dependent (volatility clusters, positions persist), so
resampling single steps would understate the uncertainty. We use the **stationary bootstrap** (Politis &
Romano, 1994): a resample of ``n`` steps is made of blocks that start at uniformly drawn steps and whose
lengths are geometric with mean ``b``, wrapping around the end of the series. Its mean block length ``b`` is
chosen from the data by the **Politis–White automatic rule** (Politis & White, 2004, with the correction of
Patton, Politis & White, 2009), the rule the ``arch`` package uses:

* ``R(k)`` the sample autocovariance at lag ``k`` (divisor ``n``), ``ρ(k) = R(k) / R(0)``;
* ``m̂`` the smallest lag after which ``K_n = max(5, ⌊log10 n⌋)`` consecutive ``|ρ|`` are all below
  ``2 · sqrt(log10(n) / n)``; ``M = min(2 · max(m̂, 1), ⌈√n⌉ + K_n)``;
* with the flat-top kernel ``λ(s) = 1`` for ``|s| ≤ ½``, ``2(1 − |s|)`` for ``½ < |s| ≤ 1``:
  ``G = 2 Σ_{k=1..M} λ(k/M) · k · R(k)`` and ``g = R(0) + 2 Σ_{k=1..M} λ(k/M) · R(k)``;
* ``b = (G² / g²)^{1/3} · n^{1/3}`` (``2G² / D_SB`` with ``D_SB = 2g²``), clipped to ``[1, ⌈min(3√n, n/3)⌉]``;
  a series with ``g = 0`` (constant, e.g. a flat policy) gets ``b = 1``.

Intervals are **percentile** intervals of the resampled statistic at confidence ``level`` (two-sided). The
Sharpe ratio is :func:`rltrade.training.metrics.sharpe` (``mean / std(ddof=1) · sqrt(periods_per_year)``, 0 when
the standard deviation is 0), so the point estimate equals the backtest metric.

The difference of two policies' Sharpe ratios is bootstrapped **paired**: both series are resampled with the
same indices, so what the two had in common (the market's moves) is kept together, and the difference of a
series with itself is exactly 0 in every resample. Its block length is the larger of the two series' own.

A **one-sided test of a mean** (:func:`mean_greater_than_zero`) resamples a single series (typically the
per-step return difference of two policies over the same steps, so the pairing is built in) with the same
stationary bootstrap and its own Politis–White block length; it passes at level ``1 − α`` when the ``α``
quantile of the resampled means is above 0 (a one-sided percentile bound). A constant series has no spread:
it passes exactly when its value is above 0.

Cost: ``n_resamples · n`` gathers, drawn in chunks of about :data:`CHUNK_ELEMENTS` indices so memory stays
bounded; the chunking depends on ``n`` only, so results are the same on any machine for a given generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from rltrade.training.metrics import sharpe

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

CHUNK_ELEMENTS: Final = 1 << 20
"""Indices drawn per chunk (8 MB of int64, some 50 MB of temporaries): ``CHUNK_ELEMENTS // n`` resamples at a time."""


@dataclass(frozen=True)
class Interval:
    """A bootstrap percentile interval around a point estimate."""

    estimate: float
    low: float
    high: float
    level: float
    block_length: float
    """Mean block length of the stationary bootstrap, in steps."""
    n_resamples: int

    def to_dict(self) -> dict[str, float | int]:
        """Return the estimate and its interval as a JSON-ready dict (``estimate``, ``ci_low``, ``ci_high``, ...)."""
        return {
            "estimate": self.estimate,
            "ci_low": self.low,
            "ci_high": self.high,
            "ci_level": self.level,
            "block_length": self.block_length,
            "n_resamples": self.n_resamples,
        }


def autocovariance(x_T: npt.ArrayLike, max_lag: int) -> F64:
    """``R(0..max_lag)`` of the demeaned series, divisor ``n`` (via FFT, zero-padded so lags do not wrap)."""
    x = np.asarray(x_T, dtype=np.float64)
    eps = x - x.mean()
    n = eps.size
    size = 1 << int(2 * n - 1).bit_length()
    f = np.fft.rfft(eps, size)
    acv = np.fft.irfft(f * np.conj(f), size)[: max_lag + 1] / n
    return np.asarray(acv, dtype=np.float64)


def optimal_block_length(x_T: npt.ArrayLike) -> float:
    """Politis–White mean block length of the stationary bootstrap for ``x_T`` (module docstring)."""
    x = np.asarray(x_T, dtype=np.float64)
    n = x.size
    if n < 4:
        return 1.0
    k_n = max(5, int(math.log10(n)))
    m_max = math.ceil(math.sqrt(n)) + k_n
    b_max = math.ceil(min(3.0 * math.sqrt(n), n / 3.0))
    acv = autocovariance(x, min(m_max + k_n, n - 1))
    if acv[0] <= 0.0:
        return 1.0
    small_K = np.abs(acv[1:] / acv[0]) < 2.0 * math.sqrt(math.log10(n) / n)
    # run_K[m] is True when lags m+1 .. m+K_n are all insignificant.
    found = np.zeros(0, np.int64)
    if small_K.size >= k_n:
        run_K = np.asarray(np.lib.stride_tricks.sliding_window_view(small_K, k_n).all(axis=1), dtype=bool)
        found = np.flatnonzero(run_K[: m_max + 1])
    m = min(2 * max(int(found[0]), 1), m_max) if found.size else m_max
    m = min(m, acv.size - 1)
    k = np.arange(1, m + 1)
    s = k / m
    lam = np.where(s <= 0.5, 1.0, 2.0 * (1.0 - s))
    big_g = 2.0 * float(np.sum(lam * k * acv[1 : m + 1]))
    g = float(acv[0] + 2.0 * np.sum(lam * acv[1 : m + 1]))
    if g <= 0.0:
        return 1.0
    # A near-constant series has g so small that g² underflows to 0: then use the equal |G / g|^(2/3).
    ratio = big_g**2 / g**2 if g * g > 0.0 else abs(big_g / g) ** 2.0
    if not math.isfinite(ratio):
        return float(b_max)
    b = ratio ** (1.0 / 3.0) * n ** (1.0 / 3.0)
    return float(min(max(b, 1.0), b_max))


def stationary_bootstrap_indices(n: int, block_length: float, n_resamples: int, rng: np.random.Generator) -> I64:
    """Draw ``int64 [n_resamples, n]`` indices into a series of ``n`` steps, in blocks.

    Blocks have geometric lengths of mean ``block_length``, start at uniform steps and wrap past the end (the
    first step always starts a block).
    """
    if n < 1 or n_resamples < 1:
        raise ValueError(f"need n ≥ 1 and n_resamples ≥ 1, got n={n}, n_resamples={n_resamples}")
    if block_length < 1.0:
        raise ValueError(f"mean block length must be ≥ 1 step, got {block_length}")
    t_T = np.arange(n, dtype=np.int64)
    new_RT = rng.random((n_resamples, n)) < 1.0 / block_length
    new_RT[:, 0] = True
    start_RT = rng.integers(0, n, (n_resamples, n), dtype=np.int64)
    # The step at which the block holding each position began: a running maximum of block-start positions.
    began_RT = np.maximum.accumulate(np.where(new_RT, t_T, 0), axis=1)
    return (np.take_along_axis(start_RT, began_RT, axis=1) + t_T - began_RT) % n


def resampled_sharpes(
    series: Sequence[npt.ArrayLike],
    periods_per_year: float,
    *,
    block_length: float,
    n_resamples: int,
    rng: np.random.Generator,
) -> F64:
    """``float64 [len(series), n_resamples]``: the Sharpe ratio of every series on the same resamples."""
    x_ST = np.stack([np.asarray(s, dtype=np.float64) for s in series])
    n = x_ST.shape[1]
    out_SR = np.empty((x_ST.shape[0], n_resamples))
    per_chunk = max(1, CHUNK_ELEMENTS // n)
    for r0 in range(0, n_resamples, per_chunk):
        r1 = min(r0 + per_chunk, n_resamples)
        idx_RT = stationary_bootstrap_indices(n, block_length, r1 - r0, rng)
        for s in range(x_ST.shape[0]):
            out_SR[s, r0:r1] = _sharpe_rows(x_ST[s][idx_RT], periods_per_year)
    return out_SR


def sharpe_ci(
    returns_T: npt.ArrayLike,
    periods_per_year: float,
    *,
    rng: np.random.Generator,
    n_resamples: int = 1000,
    level: float = 0.95,
    block_length: float | None = None,
) -> Interval:
    """Stationary-bootstrap percentile interval of the annualised Sharpe ratio of ``returns_T``.

    A series of fewer than 2 steps has no spread to resample: its interval is the point estimate itself.
    """
    r = _series(returns_T)
    est = sharpe(r, periods_per_year)
    b = optimal_block_length(r) if block_length is None else block_length
    if r.size < 2:
        return Interval(est, est, est, level, b, 0)
    stats = resampled_sharpes([r], periods_per_year, block_length=b, n_resamples=n_resamples, rng=rng)[0]
    low, high = _percentiles(stats, level)
    return Interval(est, low, high, level, b, n_resamples)


def sharpe_diff_ci(
    a_T: npt.ArrayLike,
    b_T: npt.ArrayLike,
    periods_per_year: float,
    *,
    rng: np.random.Generator,
    n_resamples: int = 1000,
    level: float = 0.95,
    block_length: float | None = None,
) -> Interval:
    """Paired stationary-bootstrap interval of ``sharpe(a) − sharpe(b)`` over the same steps (module docstring)."""
    a, b = _series(a_T), _series(b_T)
    if a.shape != b.shape:
        raise ValueError(f"paired series must cover the same steps, got {a.size} and {b.size} returns")
    est = sharpe(a, periods_per_year) - sharpe(b, periods_per_year)
    length = max(optimal_block_length(a), optimal_block_length(b)) if block_length is None else block_length
    if a.size < 2:
        return Interval(est, est, est, level, length, 0)
    both = resampled_sharpes([a, b], periods_per_year, block_length=length, n_resamples=n_resamples, rng=rng)
    low, high = _percentiles(both[0] - both[1], level)
    return Interval(est, low, high, level, length, n_resamples)


@dataclass(frozen=True)
class OneSided:
    """A one-sided stationary-bootstrap test that a series' mean is above 0."""

    estimate: float
    """The mean of the series."""
    lower: float
    """The ``1 − level`` quantile of the resampled means (the one-sided lower bound)."""
    p_value: float
    """Share of resamples whose mean is ≤ 0 (0 for a constant positive series, 1 for a constant ≤ 0 one)."""
    level: float
    block_length: float
    n_resamples: int

    @property
    def passed(self) -> bool:
        """Whether the lower bound lies above 0."""
        return self.lower > 0.0

    def to_dict(self) -> dict[str, float | int | bool]:
        """Return the test as a JSON-ready mapping (``mean``, ``lower``, ``p_value``, ..., ``passed``)."""
        return {
            "mean": self.estimate,
            "lower": self.lower,
            "p_value": self.p_value,
            "level": self.level,
            "block_length": self.block_length,
            "n_resamples": self.n_resamples,
            "passed": self.passed,
        }


def mean_greater_than_zero(
    x_T: npt.ArrayLike,
    *,
    rng: np.random.Generator,
    n_resamples: int = 1000,
    level: float = 0.95,
    block_length: float | None = None,
) -> OneSided:
    """One-sided stationary-bootstrap test that the mean of ``x_T`` is above 0 (module docstring)."""
    x = _series(x_T)
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1), got {level}")
    est = float(x.mean()) if x.size else 0.0
    b = optimal_block_length(x) if block_length is None else block_length
    if x.size < 2 or float(np.ptp(x)) == 0.0:
        return OneSided(est, est, 0.0 if est > 0.0 else 1.0, level, b, 0)
    n = x.size
    means_R = np.empty(n_resamples)
    per_chunk = max(1, CHUNK_ELEMENTS // n)
    for r0 in range(0, n_resamples, per_chunk):
        r1 = min(r0 + per_chunk, n_resamples)
        means_R[r0:r1] = x[stationary_bootstrap_indices(n, b, r1 - r0, rng)].mean(axis=1)
    lower = float(np.quantile(means_R, 1.0 - level))
    return OneSided(est, lower, float(np.mean(means_R <= 0.0)), level, b, n_resamples)


def _series(x_T: npt.ArrayLike) -> F64:
    x = np.asarray(x_T, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"a return series must be one-dimensional, got shape {x.shape}")
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x))[0])
        raise ValueError(f"return series holds a non-finite value at step {bad}: {x[bad]}")
    return x


def _sharpe_rows(x_RT: F64, periods_per_year: float) -> F64:
    sd_R = np.std(x_RT, axis=1, ddof=1)
    mean_R = np.mean(x_RT, axis=1)
    safe = np.where(sd_R > 0.0, sd_R, 1.0)
    return np.where(sd_R > 0.0, mean_R / safe * math.sqrt(periods_per_year), 0.0)


def _percentiles(stats_R: F64, level: float) -> tuple[float, float]:
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1), got {level}")
    low, high = np.quantile(stats_R, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)
