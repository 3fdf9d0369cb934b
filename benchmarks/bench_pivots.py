"""Williams pivots, 5 levels, n = 2: vectorised ``compute_pivots`` vs the naive loop oracle, plus streaming
latency and feature throughput.

Baseline: ``rltrade.features.pivots_reference.reference_pivots``, plain Python loops over the same bars,
computing the same output (pivots of every level and kind, and the provisional-flag tables), run in full
in this process; the two results are checked identical before timing is reported.

Also reported (no baseline): ``PivotTracker.update`` latency per bar (p50 / p99 over every bar of the
series), ``PivotTracker.features`` latency, and ``pivot_features`` throughput with one query per bar close.

Run: ``.venv/bin/python -m benchmarks.bench_pivots [--quick]`` (1M seeded 1m bars; 100k with --quick).
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

from benchmarks._util import quick_parser, report_ratio, time_median
from rltrade.features.pivots import PivotSet, PivotTracker, compute_pivots, pivot_features
from rltrade.features.pivots_reference import reference_pivots
from rltrade.types import Timeframe

TF_US = Timeframe.M1.us
START_US = 1_704_067_200_000_000  # 2024-01-01 00:00 UTC


def synthetic_bars(
    n_bars: int, *, seed: int = 0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Seeded geometric random walk of 1m bars on a 0.01 tick (so equal highs/lows occur), no gaps."""
    rng = np.random.default_rng(seed)
    mid = 2500.0 * np.exp(np.cumsum(rng.normal(0.0, 8e-4, n_bars)))
    high = np.round(mid * np.exp(np.abs(rng.normal(0.0, 4e-4, n_bars))), 2)
    low = np.round(mid * np.exp(-np.abs(rng.normal(0.0, 4e-4, n_bars))), 2)
    close = np.clip(np.round(mid, 2), low, high)
    opens = START_US + np.arange(n_bars, dtype=np.int64) * TF_US
    return high, low, close, opens


def identical(a: PivotSet, b: PivotSet) -> bool:
    arrays = zip(
        (*a.highs, *a.lows, a.provisional_high, a.provisional_low),
        (*b.highs, *b.lows, b.provisional_high, b.provisional_low),
        strict=True,
    )
    return all(np.array_equal(x, y) for xs, ys in arrays for x, y in zip(xs, ys, strict=True))


def percentiles_us(samples_ns: npt.NDArray[np.int64]) -> str:
    p50, p99, p999 = np.percentile(samples_ns, [50, 99, 99.9]) / 1e3
    return f"p50 {p50:7.2f} µs   p99 {p99:7.2f} µs   p99.9 {p999:7.2f} µs"


def main() -> None:
    args = quick_parser(__doc__ or "").parse_args()
    n_bars = 100_000 if args.quick else 1_000_000
    repeats = max(3, args.repeats)
    high, low, close, opens = synthetic_bars(n_bars)
    print(f"pivots: {n_bars:,} 1m bars, n=2, 5 levels")

    ours, pivots = time_median("compute_pivots", lambda: compute_pivots(high, low, opens, TF_US), repeats=repeats)
    # the oracle takes seconds per run: no warm-up, 3 repeats
    base, ref = time_median("reference_pivots", lambda: reference_pivots(high, low, opens, TF_US), repeats=3, warmup=0)
    if not identical(pivots, ref):
        raise SystemExit("compute_pivots and reference_pivots disagree: benchmark invalid")
    counts = ", ".join(
        f"L{k} {len(h.index_P)}/{len(lo.index_P)}"
        for k, (h, lo) in enumerate(zip(pivots.highs, pivots.lows, strict=True))
    )
    print(f"  pivots (highs/lows): {counts}; outputs identical")
    ratio = report_ratio(ours, base, items=n_bars, unit="bars")
    print(f"  target >= 50x: {'met' if ratio >= 50 else 'NOT met'}")

    tracker = PivotTracker(TF_US)
    lat_ns = np.empty(n_bars, dtype=np.int64)
    opens_l, high_l, low_l, close_l = opens.tolist(), high.tolist(), low.tolist(), close.tolist()
    clock = time.perf_counter_ns
    for i in range(n_bars):
        t0 = clock()
        tracker.update(opens_l[i], high_l[i], low_l[i], close_l[i])
        lat_ns[i] = clock() - t0
    print(f"  PivotTracker.update   {percentiles_us(lat_ns)}   (every bar, timer overhead included)")
    n_calls = 20_000
    feat_ns = np.empty(n_calls, dtype=np.int64)
    for i in range(n_calls):
        t0 = clock()
        tracker.features()
        feat_ns[i] = clock() - t0
    print(f"  PivotTracker.features {percentiles_us(feat_ns)}   ({n_calls:,} calls)")

    query = opens + TF_US
    feats_t, _ = time_median("pivot_features", lambda: pivot_features(pivots, close, opens, query), repeats=repeats)
    print(
        f"  pivot_features        median {feats_t.median_s * 1e3:9.1f} ms for {n_bars:,} queries  "
        f"{feats_t.rate(n_bars):14,.0f} queries/s"
    )


if __name__ == "__main__":
    main()
