"""CNN labels: forward-return classes, next-pivot distance, and the time each label's window ends."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from rltrade.data.align import BarArrays
from rltrade.features.pivots_reference import reference_pivots
from rltrade.models.labels import (
    DOWN,
    END_NEVER,
    FLAT,
    UP,
    class_frequencies,
    classify,
    fit_flat_band,
    forward_returns,
    make_labels,
    next_pivot,
)
from rltrade.types import Timeframe

TF = Timeframe.M1


def _bars(
    close: np.ndarray, *, high: np.ndarray | None = None, low: np.ndarray | None = None, gap_at: int = -1
) -> BarArrays:
    n = close.shape[0]
    opens = np.arange(n, dtype=np.int64) * TF.us
    if gap_at >= 0:
        opens[gap_at:] += 5 * TF.us  # five missing minutes (an outage)
    high = close * 1.001 if high is None else high
    low = close * 0.999 if low is None else low
    return BarArrays.from_frame(
        pl.DataFrame(
            {
                "open_us": opens,
                "open": close,
                "high": high,
                "low": low,
                "close": close,
                "volume": np.ones(n),
                "is_filled": np.zeros(n, bool),
            }
        ),
        TF,
    )


def test_forward_return_and_its_window_end_count_stored_bars() -> None:
    close = np.array([100.0, 101.0, 99.0, 102.0, 102.0])
    bars = _bars(close, gap_at=3)
    ret, end = forward_returns(bars, 2)
    assert ret[:3] == pytest.approx(np.log(close[2:] / close[:3]))
    assert np.isnan(ret[3:]).all()
    # Bar 1's label is decided by bar 3, which opened after the outage: its window ends at bar 3's close.
    assert end[1] == bars.close_us_T[3] == (3 + 5 + 1) * TF.us
    assert (end[3:] == END_NEVER).all()


def test_classes_use_the_flat_band_strictly() -> None:
    r = np.array([-0.01, -0.002, 0.0, 0.002, 0.0021, np.nan])
    assert classify(r, 0.002).tolist() == [DOWN, FLAT, FLAT, FLAT, UP, -1]
    assert class_frequencies(classify(r, 0.002)).tolist() == pytest.approx([0.2, 0.6, 0.2])
    rng = np.random.default_rng(0)
    x = rng.standard_normal(10_000)
    band = fit_flat_band(x, 1 / 3)
    assert np.mean(classify(x, band) == FLAT) == pytest.approx(1 / 3, abs=0.01)


def _next_pivot_oracle(bars: BarArrays, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain loops: the first level-0 pivot (high before low on a tie) confirmed after each bar's close."""
    pivots = [p for p in reference_pivots(bars.high_T, bars.low_T, bars.open_us_T, TF.us, n=n, levels=1).records()]
    price = np.full(len(bars), np.nan)
    end = np.full(len(bars), END_NEVER, np.int64)
    for e in range(len(bars)):
        later = [p for p in pivots if p.confirm_us > bars.close_us_T[e]]
        if later:
            best = min(later, key=lambda p: (p.confirm_us, p.kind.value != "high"))
            price[e], end[e] = best.price, best.confirm_us
    return price, end


def test_next_pivot_matches_the_loop_oracle() -> None:
    rng = np.random.default_rng(4)
    close = np.round(2000 * np.exp(np.cumsum(rng.normal(0, 2e-3, 400))), 1)
    high = close + np.round(rng.uniform(0, 3, 400), 1)
    low = close - np.round(rng.uniform(0, 3, 400), 1)
    bars = _bars(close, high=high, low=low)
    price, end = next_pivot(bars, 2)
    want_price, want_end = _next_pivot_oracle(bars, 2)
    assert np.array_equal(end, want_end)
    assert np.allclose(price, want_price, equal_nan=True)
    # The pivot counted is never confirmed by the window's own close: it was not known then.
    known = end != END_NEVER
    assert (end[known] > bars.close_us_T[known]).all()


def test_pivot_distance_is_in_atrs_and_missing_without_atr() -> None:
    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 200)))
    bars = _bars(close)
    atr = np.where(np.arange(200) < 20, 0.0, 0.002)
    labels = make_labels(bars, atr, horizon=3, pivot_n=2, clip=50.0)
    price, end = next_pivot(bars, 2)
    ok = (np.arange(200) >= 20) & (end != END_NEVER)
    assert np.allclose(labels.pivot_dist_T[ok], np.log(price[ok] / close[ok]) / 0.002, rtol=1e-5)
    assert np.isnan(labels.pivot_dist_T[:20]).all() and (labels.pivot_end_us_T[:20] == END_NEVER).all()
    clipped = make_labels(bars, atr, horizon=3, pivot_n=2, clip=0.5)
    assert np.nanmax(np.abs(clipped.pivot_dist_T)) <= 0.5
    with pytest.raises(ValueError, match="shape"):
        make_labels(bars, atr[:-1], horizon=3)
