"""Causality of the feature kernels: changing or adding data strictly after t never changes a value at t.

For each kernel, hypothesis draws a series, a cut ``t`` and an independent "future"; the features at
every time <= t are computed on the original series, on the series with everything after t replaced
(same length: results must be bit-identical), and on the series truncated at t (a different array
length may round differently in vectorised math, so there 1e-12 relative is allowed).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from rltrade.data.splits import TimeRange
from rltrade.features.bar_channels import BarChannelSpec, bar_windows, compute_bar_channels
from rltrade.features.regime import RegimeSpec, classify_regimes, compute_regime_features, regime_features_at
from rltrade.features.ticks import TickSpec, fit_qty_scale, prepare_trades, tick_windows
from rltrade.types import US_PER_SECOND

F64 = npt.NDArray[np.float64]
CAUSAL = settings(max_examples=25, deadline=None, derandomize=True)
SMALL_REGIME = RegimeSpec(
    adx_period=5,
    trend_window=12,
    vol_window=5,
    pct_step=3,
    pct_lookback=30,
    pct_min_samples=2,
    corr_window=10,
    range_window=8,
    volume_window=15,
)


def ohlcv(n: int, rng: np.random.Generator, start: float = 100.0) -> tuple[F64, F64, F64, F64, F64]:
    c = start * np.exp(np.cumsum(rng.normal(0.0, rng.choice([1e-4, 3e-3]), n)))
    o = np.concatenate([[start], c[:-1]])
    h = np.maximum(o, c) * np.exp(np.abs(rng.normal(0.0, 1e-3, n)))
    lo = np.minimum(o, c) * np.exp(-np.abs(rng.normal(0.0, 1e-3, n)))
    v = rng.lognormal(0.0, 1.0, n) * (rng.random(n) > 0.1)
    return o, h, lo, c, v


def splice(a: tuple[F64, ...], b: tuple[F64, ...], t: int) -> tuple[F64, ...]:
    """``a`` up to and including row t, then ``b``."""
    return tuple(np.concatenate([x[: t + 1], y[t + 1 :]]) for x, y in zip(a, b, strict=True))


def same(a: npt.NDArray[np.generic], b: npt.NDArray[np.generic], *, exact: bool) -> None:
    if exact or a.dtype == np.bool_:
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@CAUSAL
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 160), cut=st.floats(0.0, 1.0), w=st.integers(1, 60))
def test_bar_channels_ignore_the_future(seed: int, n: int, cut: float, w: int) -> None:
    rng = np.random.default_rng(seed)
    t = min(int(cut * n), n - 1)
    spec = BarChannelSpec(volume_window=int(rng.integers(1, 50)))
    base = ohlcv(n, rng)
    future = ohlcv(n + 30, rng, start=float(rng.uniform(50, 200)))
    idx = np.arange(-1, t + 1)
    ref_x, ref_m = bar_windows(compute_bar_channels(*base, spec), idx, w)
    for variant, exact in [(splice(base, future, t), True), (tuple(x[: t + 1] for x in base), False)]:
        x, m = bar_windows(compute_bar_channels(*variant, spec), idx, w)
        same(x, ref_x, exact=exact)
        same(m, ref_m, exact=True)


@CAUSAL
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300), cut=st.floats(0.0, 1.0))
def test_ticks_ignore_the_future(seed: int, n: int, cut: float) -> None:
    rng = np.random.default_rng(seed)
    spec = TickSpec(window_us=10 * US_PER_SECOND, max_trades=int(rng.integers(1, 80)), qty_scale=0.5)
    gaps = (rng.exponential(200_000.0, n) * (rng.random(n) < 0.6)).astype(np.int64)
    ts = 1_000 * US_PER_SECOND + np.cumsum(gaps)
    trades = (ts, 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))), rng.pareto(1.2, n) + 1e-3, rng.choice([-1, 1], n))
    t = int(ts[min(int(cut * n), n - 1)] + rng.integers(0, 2) * rng.integers(0, 300_000))
    queries = np.unique(np.concatenate([ts[ts <= t], [t, t - 1, t - 10 * US_PER_SECOND]]))
    ref_x, ref_m = tick_windows(prepare_trades(*trades, spec), queries)
    past = ts <= t
    m = int(rng.integers(0, 100))
    # The first replaced trade lands 1 µs after t, the nearest a future trade can be.
    future_ts = t + 1 + np.cumsum(np.concatenate([[0], rng.choice([0, 1, 1_000, 50_000], m)]))[:m]
    changed = (
        np.concatenate([ts[past], future_ts]),
        np.concatenate([trades[1][past], rng.uniform(1, 1000, m)]),
        np.concatenate([trades[2][past], rng.uniform(1e-3, 100, m)]),
        np.concatenate([trades[3][past], rng.choice([-1, 1], m)]),
    )
    x, mask = tick_windows(prepare_trades(*changed, spec), queries)
    same(x, ref_x, exact=m == n - int(past.sum()))
    same(mask, ref_m, exact=True)


@CAUSAL
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), cut=st.floats(0.0, 1.0))
def test_fitted_qty_scale_ignores_the_future_and_stays_in_its_range(seed: int, n: int, cut: float) -> None:
    """The fitted normaliser at t never depends on a trade after t, inside or after its fit range."""
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 3_600 * US_PER_SECOND, n))
    qty = rng.pareto(1.2, n) + 1e-3
    fit = TimeRange(int(rng.integers(0, 600)) * US_PER_SECOND, int(rng.integers(1_200, 4_000)) * US_PER_SECOND)
    if not ((ts >= fit.start_us) & (ts < fit.end_us)).any():
        return
    t = int(cut * 4_000 * US_PER_SECOND)
    ref = fit_qty_scale(ts, qty, fit)
    assert all(fit.start_us < c <= fit.end_us for c, _ in ref.steps) and ref.steps[-1] == (fit.end_us, ref.value)
    changed = np.where(ts >= t, rng.uniform(1e-3, 1e3, n), qty)
    queries = np.unique(np.concatenate([[0, t], [c for c, _ in ref.steps if c <= t], [c - 1 for c, _ in ref.steps]]))
    queries = queries[(queries >= 0) & (queries <= t)]
    ref_at = TickSpec(qty_scale=ref.value, qty_scale_steps=ref.steps).qty_scale_at(queries)
    got = fit_qty_scale(ts, changed, fit)
    got_at = TickSpec(qty_scale=got.value, qty_scale_steps=got.steps).qty_scale_at(queries)
    np.testing.assert_array_equal(got_at, ref_at)


@CAUSAL
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 220), cut=st.floats(0.0, 1.0))
def test_regime_ignores_the_future(seed: int, n: int, cut: float) -> None:
    rng = np.random.default_rng(seed)
    t = min(int(cut * n), n - 1)
    spec = replace(SMALL_REGIME, adx_period=int(rng.integers(2, 12)))
    _, h, lo, c, v = ohlcv(n, rng)
    ref = ohlcv(n, rng, start=1000.0)[3]
    base = (h, lo, c, v, ref)
    _, fh, flo, fc, fv = ohlcv(n + 20, rng, start=float(rng.uniform(50, 200)))
    future = (fh, flo, fc, fv, ohlcv(n + 20, rng, start=900.0)[3])
    idx = np.arange(-1, t + 1)
    f = compute_regime_features(*base, spec)
    ref_x, ref_m = regime_features_at(f, idx)
    ref_labels = classify_regimes(ref_x, ref_m)
    for variant, exact in [(splice(base, future, t), True), (tuple(x[: t + 1] for x in base), False)]:
        x, m = regime_features_at(compute_regime_features(*variant, spec), idx)
        same(x, ref_x, exact=exact)
        same(m, ref_m, exact=True)
        np.testing.assert_array_equal(classify_regimes(x, m), ref_labels)
