"""Decimation, candle resampling, trade selection and label runs of the report (rltrade.report.decimate)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from rltrade.report.decimate import (
    BAR_LADDER_US,
    choose_bar_us,
    label_runs,
    largest_abs_indices,
    minmax_indices,
    resample_ohlc,
)
from rltrade.types import US_PER_DAY, US_PER_MINUTE, US_PER_SECOND

F64 = npt.NDArray[np.float64]


def naive_resample(
    open_us: npt.NDArray[np.int64], o: F64, h: F64, lo: F64, c: F64, bar_us: int
) -> list[tuple[int, float, float, float, float]]:
    """Oracle: one Python dict of buckets."""
    buckets: dict[int, list[int]] = {}
    for i, t in enumerate(open_us):
        buckets.setdefault(int(t) // bar_us, []).append(i)
    rows = []
    for b, idx in sorted(buckets.items()):
        rows.append((b * bar_us, float(o[idx[0]]), max(h[i] for i in idx), min(lo[i] for i in idx), float(c[idx[-1]])))
    return rows


@pytest.mark.parametrize("n", [10_000, 10_001, 99_999])
@pytest.mark.parametrize("cap", [4, 5, 1_000])
def test_minmax_respects_the_cap_and_keeps_extremes_first_and_last(n: int, cap: int) -> None:
    y = np.cumsum(np.random.default_rng(n).normal(size=n))
    keep = minmax_indices(y, cap)
    assert keep.size <= cap
    assert np.all(np.diff(keep) > 0)
    assert keep[0] == 0 and keep[-1] == n - 1
    assert int(np.argmin(y)) in keep and int(np.argmax(y)) in keep


def test_minmax_keeps_every_bucket_extreme() -> None:
    y = np.zeros(1_000)
    spikes = np.arange(5, 1_000, 50)  # one spike per 50 points, cap gives ~20-point buckets
    y[spikes] = np.where(np.arange(spikes.size) % 2 == 0, 10.0, -10.0)
    keep = minmax_indices(y, 102)
    assert set(spikes.tolist()) <= set(keep.tolist())


def test_minmax_short_series_untouched_and_nan_not_picked() -> None:
    assert minmax_indices(np.arange(7.0), 10).tolist() == list(range(7))
    y = np.arange(100.0)
    y[40:60] = np.nan
    keep = minmax_indices(y, 10)
    assert not np.isnan(y[keep][1:-1]).any()
    with pytest.raises(ValueError, match="at least 4"):
        minmax_indices(y, 3)
    with pytest.raises(ValueError, match="1-D"):
        minmax_indices(np.zeros((2, 2)), 10)


def test_choose_bar_us_picks_the_smallest_ladder_size_under_the_cap() -> None:
    hour = 60 * US_PER_MINUTE
    assert choose_bar_us(hour, US_PER_SECOND, 600) == 10 * US_PER_SECOND  # 360 bars; 5 s would give 720
    assert choose_bar_us(hour, US_PER_SECOND, 3_600) == US_PER_SECOND
    assert choose_bar_us(hour, US_PER_MINUTE, 600) == US_PER_MINUTE  # never finer than the source
    assert choose_bar_us(1_000 * US_PER_DAY, US_PER_MINUTE, 100) == 10 * US_PER_DAY
    for span in (7 * US_PER_DAY, 3 * hour + 17):
        size = choose_bar_us(span, US_PER_SECOND, 500)
        assert size in BAR_LADDER_US and -(-span // size) <= 500


def test_resample_ohlc_matches_a_loop_oracle() -> None:
    rng = np.random.default_rng(3)
    open_us = np.sort(rng.choice(np.arange(0, 4_000), size=1_500, replace=False)).astype(np.int64) * US_PER_SECOND
    c = 100 + np.cumsum(rng.normal(size=open_us.size))
    o = c + rng.normal(size=c.size) * 0.1
    h = np.maximum(o, c) + rng.random(c.size)
    lo = np.minimum(o, c) - rng.random(c.size)
    got = resample_ohlc(open_us, o, h, lo, c, 60 * US_PER_SECOND)
    want = naive_resample(open_us, o, h, lo, c, 60 * US_PER_SECOND)
    assert got.open_us_K.tolist() == [r[0] for r in want]
    for j, arr in enumerate((got.open_K, got.high_K, got.low_K, got.close_K), start=1):
        np.testing.assert_array_equal(arr, [r[j] for r in want])


def test_resample_rejects_unsorted_bars() -> None:
    with pytest.raises(ValueError, match="increasing"):
        resample_ohlc([2, 1], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], 10)


def test_largest_abs_indices_and_label_runs() -> None:
    pnl = np.array([0.5, -9.0, 0.1, 3.0, np.nan, -0.2])
    assert largest_abs_indices(pnl, 2).tolist() == [1, 3]
    assert largest_abs_indices(pnl, 10).tolist() == list(range(6))
    runs = label_runs([2, 2, -1, 0, 0, 0, 2])
    assert runs.start_R.tolist() == [0, 2, 3, 6]
    assert runs.stop_R.tolist() == [2, 3, 6, 7]
    assert runs.label_R.tolist() == [2, -1, 0, 2]
    assert label_runs([]).start_R.size == 0
