"""State builders: batch gather throughput vs a plain numpy copy of the same bytes; streaming latency.

1. Batch gather at the full 15,588-feature layout on the synthetic market: states/s for batches of
   128, and the ratio to two copies of the same number of bytes: ``np.take`` of whole state rows from
   a filled float32 matrix (the memory-bandwidth bound a precomputed state matrix would give, which we
   never materialise; filled, because untouched ``np.zeros`` pages share one physical zero page and
   would be read from the cache), and a compiled copy of the same bytes in the gather's own chunks
   (each block's window copied contiguously out of an interleaved per-row float32 array as long as
   its series, at a random end row, into its columns: what the gather would cost if it did no
   arithmetic). Beside them the numpy gather the compiled kernels replaced
   (``tests/support/numpy_gather.py``, the same values bit for bit), as the "before". Ratios are
   given for wall time and for this process's CPU time (the shared machine's load moves wall time).
2. The demo layout's gather, whose recent-returns blocks read the log of their series' closes: cached once
   per series (now) vs taken anew on every gather (before), for batches of 8 (an env step) and 128.
3. Streaming builder on the real 11-minute ETH/BTC tick window (full layout): per-trade update latency
   p50/p99, and per-second ``state_at`` latency p50/p99. Baselines: rebuilding the state from scratch
   with the batch builder at each second (what a naive live loop would do), and a second streaming
   builder fed the same trades that reads its ticks and pivot blocks the numpy way
   (``tests/support/numpy_stream.py``: what the builder did before it ran the gather's compiled kernels).
"""

from __future__ import annotations

import sys
import time

import numba
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
from tests.support.numpy_stream import use_numpy_reads


def bench_gather(quick: bool, repeats: int) -> None:
    frames = load_market(DataConfig(synthetic=SyntheticConfig(history_days=320, tick_days=0.1 if quick else 0.5)))
    cfg = FeaturesConfig(layout=LayoutConfig(name="full"))
    layout = build_layout(cfg.layout)
    builder = BatchStateBuilder(layout, build_market_features(frames, layout, cfg))
    start, end = frames.tick_span_us()  # type: ignore[misc]
    rng = np.random.default_rng(0)
    batch, n_batches = 128, 4 if quick else 16
    times = [rng.integers(start + 300 * US_PER_SECOND, end, batch) for _ in range(n_batches)]
    # 1.2 GB: far larger than the caches. Filled, not np.zeros: untouched zero pages all map to one shared
    # physical page, so "copying" them reads the cache and never DRAM (2-3x faster than a real matrix).
    matrix = np.empty((20_000, layout.size), dtype=np.float32)
    matrix[:] = rng.standard_normal(layout.size, dtype=np.float32)
    rows = [rng.integers(0, matrix.shape[0], batch) for _ in range(n_batches)]

    before = NumpyBatchStateBuilder(layout, builder.features)
    chunks = _ChunkCopy(layout, builder, rng, batch, n_batches)

    def gather() -> None:
        for t in times:
            builder.gather(t)

    def gather_before() -> None:
        for t in times:
            before.gather(t)

    def copy() -> None:
        for r in rows:
            np.take(matrix, r, axis=0)

    (ours, old, base, chunk), _ = time_interleaved(
        {"batch gather": gather, "numpy gather (before)": gather_before, "numpy copy": copy, "chunk copy": chunks.run},
        repeats=repeats,
    )
    n = batch * n_batches
    print(f"batch gather, full layout ({layout.size:,} floats = {layout.size * 4 / 1024:.0f} KiB per state), B={batch}")
    for name, tm in (
        ("rltrade gather", ours),
        ("before (numpy)", old),
        ("numpy copy of rows", base),
        ("chunk copy", chunk),
    ):
        print(
            f"  {name:<19} {n / tm.median_s:12,.0f} states/s  ({tm.median_s / n_batches * 1e3:6.2f} ms/batch wall, "
            f"{tm.median_cpu_s / n_batches * 1e3:6.2f} ms CPU)"
        )
    for name, tm in (("numpy copy of rows", base), ("chunk copy", chunk)):
        print(
            f"  gather / {name} throughput: {tm.median_s / ours.median_s:.3f} wall, "
            f"{tm.median_cpu_s / ours.median_cpu_s:.3f} CPU (1.0 = as fast as that copy)"
        )
    print(
        f"  before / copy throughput: {base.median_s / old.median_s:.3f}; speed-up {old.median_s / ours.median_s:.1f}x"
    )
    print(f"  never materialised: a month of 1 s states would be {2_592_000 * layout.size * 4 / 2**30:,.0f} GiB")
    _bench_bar_windows(layout, builder, times, matrix, rows, repeats)
    for block in layout.blocks:
        if block.kind == "flags":
            continue
        sub = BatchStateBuilder(_only(layout, block.name), builder.features)
        sub.gather_blocks(times[0])  # untimed: the one-time checks (the pivot bars' on first use)
        a = time.perf_counter()
        for t in times:
            sub.gather_blocks(t)
        print(f"    {block.name:<16} {(time.perf_counter() - a) / n_batches * 1e3:7.2f} ms/batch")


def _bench_bar_windows(
    layout: StateLayout,
    builder: BatchStateBuilder,
    times: list[np.ndarray],
    matrix: np.ndarray,
    rows: list[np.ndarray],
    repeats: int,
) -> None:
    """The bar windows alone (issue 13's ask: at least half the speed of a numpy copy of the same bytes).

    A builder whose layout holds only the five bar blocks (and their flags) gathers the same query times;
    the baseline copies the same number of floats per state out of the filled matrix's rows.
    """
    bars = [b.name for b in layout.blocks if b.kind == "bars"]
    sub = BatchStateBuilder(_only(layout, *bars), builder.features)
    width = sub.size

    def gather() -> None:
        for t in times:
            sub.gather(t)

    def copy() -> None:
        for r in rows:
            matrix[r, :width]  # fancy indexing copies the rows' first `width` floats (np.take would copy the view)

    (ours, base), _ = time_interleaved({"bar windows": gather, "numpy copy": copy}, repeats=repeats)
    print(
        f"  bar windows alone ({len(bars)} blocks + flags, {width:,} floats per state): gather "
        f"{ours.median_s / len(times) * 1e3:.2f} ms/batch, numpy copy of as many floats "
        f"{base.median_s / len(times) * 1e3:.2f} ms/batch: {base.median_s / ours.median_s:.3f} of the copy's speed "
        f"wall, {base.median_cpu_s / ours.median_cpu_s:.3f} CPU"
    )


def bench_returns(quick: bool, repeats: int) -> None:
    """The demo preset's layout (with the four recent-returns blocks): gathers with the log closes cached vs not.

    Before, each return block took the log of its series' whole close array on every gather; clearing the
    builder's cache before each gather reproduces that in the same process.
    """
    days = (120, 0.5) if quick else (400, 2.0)
    frames = load_market(DataConfig(synthetic=SyntheticConfig(history_days=days[0], tick_days=days[1])))
    cfg = FeaturesConfig(layout=LayoutConfig(name="demo", returns=True))  # as the demo preset has it
    layout = build_layout(cfg.layout)
    builder = BatchStateBuilder(layout, build_market_features(frames, layout, cfg))
    span = frames.tick_span_us()
    assert span is not None
    rng = np.random.default_rng(0)
    print(f"demo layout ({layout.size:,} features) on {days[0]} days of bars and {days[1]} days of trades:")
    for batch in (8, 128):  # the env's observation of 8 envs; an update's batch
        times = [rng.integers(span[0] + 300 * US_PER_SECOND, span[1], batch) for _ in range(50)]

        def cached(times: list[np.ndarray] = times) -> None:
            for t in times:
                builder.gather(t)

        def uncached(times: list[np.ndarray] = times) -> None:
            for t in times:
                builder._log_closes.clear()
                builder.gather(t)

        (ours, before), _ = time_interleaved({"cached": cached, "uncached (before)": uncached}, repeats=repeats)
        print(
            f"  B={batch:<4} log closes cached {ours.median_s / len(times) * 1e3:6.2f} ms per gather, "
            f"taken anew each gather (before) {before.median_s / len(times) * 1e3:6.2f} ms: "
            f"{before.median_s / ours.median_s:.2f}x"
        )


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
    before = StreamingStateBuilder(layout, cfg, frames, t0)
    use_numpy_reads(before)
    trades = frames.trade_stream(t0)
    if quick:
        trades = trades[:5000]
    upd: list[float] = []
    state: list[float] = []
    state_before: list[float] = []
    worst = 0.0
    naive: list[float] = []
    # Baseline: a naive live loop recomputes every kernel from the raw data known at t, each second.
    for k in range(3):
        t = t0 + (k + 1) * US_PER_SECOND
        a = time.perf_counter()
        BatchStateBuilder(layout, build_market_features(frames.until(t), layout, cfg)).gather(np.array([t]))
        naive.append(time.perf_counter() - a)
    next_second = (t0 // US_PER_SECOND + 1) * US_PER_SECOND
    for k, (role, ts, p, q, s) in enumerate(trades):
        while ts >= next_second:
            # Alternate which builder reads first, so that neither always finds the other's data in cache.
            timed = ((stream, state), (before, state_before)) if k % 2 else ((before, state_before), (stream, state))
            got = []
            for builder, out in timed:
                a = time.perf_counter()
                got.append(builder.state_at(next_second))
                out.append(time.perf_counter() - a)
            worst = max(worst, float(np.abs(got[0] - got[1]).max()))
            next_second += US_PER_SECOND
        a = time.perf_counter()
        stream.update(role, ts, p, q, s)
        upd.append(time.perf_counter() - a)
        before.update(role, ts, p, q, s)
    u, st, sb, nv = (np.array(x) * 1e6 for x in (upd, state, state_before, naive))
    print(f"streaming builder, real tick window, full layout: {len(u):,} trades, {len(st):,} decision seconds")
    print(f"  per-trade update      p50 {np.percentile(u, 50):8.1f} µs   p99 {np.percentile(u, 99):8.1f} µs", end="")
    print(f"   max {u.max():8.0f} µs")
    print(f"  state_at (per second) p50 {np.percentile(st, 50):8.1f} µs   p99 {np.percentile(st, 99):8.1f} µs")
    print(
        f"  state_at with the ticks and pivot blocks read the numpy way (before)  p50 {np.percentile(sb, 50):8.1f} µs"
        f"   p99 {np.percentile(sb, 99):8.1f} µs: {np.percentile(sb, 50) / np.percentile(st, 50):.2f}x at p50, "
        f"{np.percentile(sb, 99) / np.percentile(st, 99):.2f}x at p99; states differ by at most {worst:.1e}"
    )
    print(f"  baseline: recompute all kernels from raw data each second  p50 {np.percentile(nv, 50):8.1f} µs")
    print(f"  state_at speed-up vs the naive recompute: {np.percentile(nv, 50) / np.percentile(st, 50):.0f}x")


@numba.njit(nogil=True, cache=True)
def _copy_chunks(src_T: np.ndarray, end_B: np.ndarray, width: int, out_BF: np.ndarray, col0: int) -> None:
    """For each state ``b``, copy the ``width`` floats of ``src_T`` ending at flat index ``end_B[b]`` to its columns."""
    for b in range(end_B.shape[0]):
        # Views from index 0: numba's wraparound check on an offset index would keep this loop scalar.
        dst, src = out_BF[b, col0 : col0 + width], src_T[end_B[b] - width : end_B[b]]
        for i in range(width):
            dst[i] = src[i]


class _ChunkCopy:
    """The gather's bytes copied without arithmetic: per block, one contiguous chunk per state.

    Each block gets a float32 array as long as its series (bars, trades; 20,000 rows for the small
    blocks) with the block's per-row width, interleaved; a state copies the block's ``size`` floats
    ending at a random row into its columns of a fresh ``[B, F]`` matrix, as the gather writes them.
    """

    def __init__(
        self, layout: StateLayout, builder: BatchStateBuilder, rng: np.random.Generator, batch: int, n_batches: int
    ) -> None:
        f = builder.features
        self.size, self.batch = layout.size, batch
        self.blocks: list[tuple[np.ndarray, int, int, list[np.ndarray]]] = []
        for block in layout.blocks:
            if block.kind == "bars" and block.symbol is not None and block.timeframe is not None:
                rows = max(len(f.series[(block.symbol, block.timeframe)].bars), block.shape[0])
                per_row = block.size // block.shape[0]
            elif block.kind == "ticks" and f.trades is not None:
                rows, per_row = max(f.trades.ts_us_N.shape[0], block.shape[0]), block.size // block.shape[0]
            else:
                rows, per_row = 20_000, block.size
            src = rng.standard_normal(rows * per_row).astype(np.float32)
            n_rows = block.size // per_row
            ends = [(rng.integers(n_rows, rows + 1, batch)) * per_row for _ in range(n_batches)]
            self.blocks.append((src, block.size, block.start, ends))

    def run(self) -> None:
        for k in range(len(self.blocks[0][3])):
            out = np.empty((self.batch, self.size), np.float32)
            for src, size, start, ends in self.blocks:
                _copy_chunks(src, ends[k], size, out, start)


def _only(layout: StateLayout, *names: str) -> StateLayout:
    """A layout holding the blocks ``names`` back to back (and the flags), to time blocks separately."""
    from dataclasses import replace

    blocks, start = [], 0
    for name in names:
        blocks.append(replace(layout.block(name), start=start))
        start = blocks[-1].stop
    n_flags = len(layout.flag_names) - (len(layout.blocks) - 1) + len(names)
    flags = replace(layout.block("flags"), start=start, shape=(n_flags,))
    return replace(layout, blocks=(*blocks, flags))


def main() -> None:
    parser = quick_parser(__doc__ or "")
    args = parser.parse_args()
    bench_gather(args.quick, args.repeats)
    bench_returns(args.quick, args.repeats)
    bench_stream(args.quick)


if __name__ == "__main__":
    sys.path.insert(0, ".")
    main()
