"""State builders: batch gather throughput vs a plain numpy copy of the same bytes; streaming latency.

1. Batch gather at the full 15,588-feature layout on the synthetic market: states/s for batches of
   128, and the ratio to ``np.take`` of the same number of bytes from a preallocated float32 matrix
   (the memory-bandwidth bound a precomputed state matrix would give, which we never materialise);
   beside it the numpy gather the compiled kernels replaced (``tests/support/numpy_gather.py``, the
   same values bit for bit), as the "before".
2. Streaming builder on the real 11-minute ETH/BTC tick window (full layout): per-trade update latency
   p50/p99, and per-second ``state_at`` latency p50/p99. Baseline: rebuilding the state from scratch
   with the batch builder at each second (what a naive live loop would do).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from benchmarks._util import quick_parser, time_interleaved
from rltrade.config import DataConfig, FeaturesConfig, LayoutConfig, SyntheticConfig
from rltrade.data.market import load_market
from rltrade.features.layout import StateLayout, build_layout
from rltrade.features.market_features import build_market_features
from rltrade.features.state_batch import BatchStateBuilder
from rltrade.features.state_stream import StreamingStateBuilder
from rltrade.types import US_PER_SECOND
from tests.support.numpy_gather import NumpyBatchStateBuilder


def bench_gather(quick: bool, repeats: int) -> None:
    frames = load_market(DataConfig(synthetic=SyntheticConfig(history_days=320, tick_days=0.1 if quick else 0.5)))
    cfg = FeaturesConfig(layout=LayoutConfig(name="full"))
    layout = build_layout(cfg.layout)
    builder = BatchStateBuilder(layout, build_market_features(frames, layout, cfg))
    start, end = frames.tick_span_us()  # type: ignore[misc]
    rng = np.random.default_rng(0)
    batch, n_batches = 128, 4 if quick else 16
    times = [rng.integers(start + 300 * US_PER_SECOND, end, batch) for _ in range(n_batches)]
    matrix = np.zeros((20_000, layout.size), dtype=np.float32)  # 1.2 GB: far larger than the caches
    rows = [rng.integers(0, matrix.shape[0], batch) for _ in range(n_batches)]

    before = NumpyBatchStateBuilder(layout, builder.features)

    def gather() -> None:
        for t in times:
            builder.gather(t)

    def gather_before() -> None:
        for t in times:
            before.gather(t)

    def copy() -> None:
        for r in rows:
            np.take(matrix, r, axis=0)

    (ours, old, base), _ = time_interleaved(
        {"batch gather": gather, "numpy gather (before)": gather_before, "numpy copy": copy}, repeats=repeats
    )
    n = batch * n_batches
    print(f"batch gather, full layout ({layout.size:,} floats = {layout.size * 4 / 1024:.0f} KiB per state), B={batch}")
    print(f"  rltrade gather  {n / ours.median_s:12,.0f} states/s  ({ours.median_s / n_batches * 1e3:.1f} ms/batch)")
    print(f"  before (numpy)  {n / old.median_s:12,.0f} states/s  ({old.median_s / n_batches * 1e3:.1f} ms/batch)")
    print(f"  numpy copy      {n / base.median_s:12,.0f} states/s  ({base.median_s / n_batches * 1e3:.2f} ms/batch)")
    print(f"  gather / copy throughput: {base.median_s / ours.median_s:.3f} (1.0 = memory-bandwidth bound)")
    print(
        f"  before / copy throughput: {base.median_s / old.median_s:.3f}; speed-up {old.median_s / ours.median_s:.1f}x"
    )
    print(f"  never materialised: a month of 1 s states would be {2_592_000 * layout.size * 4 / 2**30:,.0f} GiB")
    for block in layout.blocks:
        if block.kind == "flags":
            continue
        sub = BatchStateBuilder(_only(layout, block.name), builder.features)
        a = time.perf_counter()
        for t in times:
            sub.gather_blocks(t)
        print(f"    {block.name:<16} {(time.perf_counter() - a) / n_batches * 1e3:7.2f} ms/batch")


def bench_stream(quick: bool) -> None:
    from tests.support.real_data import REAL, real_market

    if not REAL.is_dir():
        print(f"streaming: skipped, real data not found at {REAL}")
        return
    frames = real_market()
    cfg = FeaturesConfig(layout=LayoutConfig(name="full"))
    layout = build_layout(cfg.layout)
    start, _ = frames.tick_span_us()  # type: ignore[misc]
    t0 = start + 320 * US_PER_SECOND
    stream = StreamingStateBuilder(layout, cfg, frames, t0)
    trades = frames.trade_stream(t0)
    if quick:
        trades = trades[:5000]
    upd: list[float] = []
    state: list[float] = []
    naive: list[float] = []
    # Baseline: a naive live loop recomputes every kernel from the raw data known at t, each second.
    for k in range(3):
        t = t0 + (k + 1) * US_PER_SECOND
        a = time.perf_counter()
        BatchStateBuilder(layout, build_market_features(frames.until(t), layout, cfg)).gather(np.array([t]))
        naive.append(time.perf_counter() - a)
    next_second = (t0 // US_PER_SECOND + 1) * US_PER_SECOND
    for role, ts, p, q, s in trades:
        while ts >= next_second:
            a = time.perf_counter()
            stream.state_at(next_second)
            state.append(time.perf_counter() - a)
            next_second += US_PER_SECOND
        a = time.perf_counter()
        stream.update(role, ts, p, q, s)
        upd.append(time.perf_counter() - a)
    u, st, nv = (np.array(x) * 1e6 for x in (upd, state, naive))
    print(f"streaming builder, real tick window, full layout: {len(u):,} trades, {len(st):,} decision seconds")
    print(f"  per-trade update      p50 {np.percentile(u, 50):8.1f} µs   p99 {np.percentile(u, 99):8.1f} µs", end="")
    print(f"   max {u.max():8.0f} µs")
    print(f"  state_at (per second) p50 {np.percentile(st, 50):8.1f} µs   p99 {np.percentile(st, 99):8.1f} µs")
    print(f"  baseline: recompute all kernels from raw data each second  p50 {np.percentile(nv, 50):8.1f} µs")
    print(f"  state_at speed-up vs the naive recompute: {np.percentile(nv, 50) / np.percentile(st, 50):.0f}x")


def _only(layout: StateLayout, name: str) -> StateLayout:
    """A layout holding one block (and the flags), to time blocks separately."""
    from dataclasses import replace

    block = replace(layout.block(name), start=0)
    flags = replace(layout.block("flags"), start=block.stop, shape=(len(layout.flag_names) - len(layout.blocks) + 2,))
    return replace(layout, blocks=(block, flags))


def main() -> None:
    parser = quick_parser(__doc__ or "")
    args = parser.parse_args()
    bench_gather(args.quick, args.repeats)
    bench_stream(args.quick)


if __name__ == "__main__":
    sys.path.insert(0, ".")
    main()
