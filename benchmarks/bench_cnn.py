"""CNN–RL bridge: live inference per tick with vs without the bar-close cache, and offline batch throughput.

1. **Streaming, per tick** (all four CNNs: 1s, 1m, 1h, 1d; default size: 300-bar windows, ETH + BTC
   channels): two streaming state builders are fed the same synthetic trades; after each trade one calls
   ``StreamingCnnBridge.refresh`` with the cache (a CNN runs only when its timeframe's bar has closed) and
   the other without it (baseline: every CNN reruns on every tick). Both are timed per tick in the same
   loop, alternating; p50 / p99 latency and the ratio of the means are printed, with the CNN passes each made.
2. **Offline, a month of 1m bars**: ``compute_rows`` (windows gathered and run in batches of
   ``inference_batch``) vs the baseline of one window per forward pass (what a naive per-bar loop does),
   the baseline on a slice and reported as a rate. Both produce the same rows (checked).

Run: ``.venv/bin/python -m benchmarks.bench_cnn [--quick]`` (torch limited to 2 threads).
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt
import polars as pl
import torch

from benchmarks._util import quick_parser, report_ratio, time_median
from rltrade.config import CnnConfig, DataConfig, FeaturesConfig, LayoutConfig, SyntheticConfig
from rltrade.data.market import load_market
from rltrade.data.splits import TimeRange
from rltrade.features.layout import CNN_TIMEFRAMES, build_layout
from rltrade.features.state_stream import StreamingStateBuilder
from rltrade.models.bridge import StreamingCnnBridge, compute_rows, run_cnn
from rltrade.models.cnn import CnnShape, build_cnn
from rltrade.models.dataset import TimeframeData, build_timeframe_data
from rltrade.models.train import FitInfo, TrainedCnn
from rltrade.types import US_PER_DAY, Timeframe

FEATURES = FeaturesConfig(layout=LayoutConfig(name="full"))


def untrained(tf: Timeframe, cfg: CnnConfig, seed: int) -> TrainedCnn:
    """A randomly initialised CNN allowed to serve from the epoch on (latency does not depend on training)."""
    model = build_cnn(CnnShape.of(cfg, 16 if cfg.use_reference else 8), torch.Generator().manual_seed(seed))
    model.eval()
    info = FitInfo(tf, TimeRange(0, 1), None, 0, cfg.flat_band, (1 / 3,) * 3, None, 0, 0, 0, 0, None, seed, 0.0, 0)
    return TrainedCnn(model, cfg, info)


def percentiles_ms(samples_ns: npt.NDArray[np.int64]) -> str:
    p50, p99 = np.percentile(samples_ns, [50, 99]) / 1e6
    return f"p50 {p50:8.3f} ms   p99 {p99:8.3f} ms   mean {samples_ns.mean() / 1e6:8.3f} ms"


def streaming(n_ticks: int) -> None:
    cfg = CnnConfig()
    frames = load_market(DataConfig(synthetic=SyntheticConfig(seed=2, history_days=330, tick_days=0.02)))
    layout = build_layout(FEATURES.layout)
    start, _ = frames.tick_span_us()  # type: ignore[misc]
    t0 = start + 60_000_000
    models = {tf: (untrained(tf, cfg, i), 0) for i, tf in enumerate(CNN_TIMEFRAMES)}
    cached = StreamingCnnBridge(models, embargo_us=0, use_cache=True)
    uncached = StreamingCnnBridge(models, embargo_us=0, use_cache=False)
    builders = [StreamingStateBuilder(layout, FEATURES, frames, t0) for _ in range(2)]
    trades = (
        pl.concat([frames.trades[r].with_columns(pl.lit(r).alias("role")) for r in ("eth", "btc")])
        .filter(pl.col("ts_us") > t0)
        .sort("ts_us", maintain_order=True)
        .select("role", "ts_us", "price", "qty", "side")
        .head(n_ticks)
        .rows()
    )
    for builder, bridge in zip(builders, (cached, uncached), strict=True):
        bridge.refresh(builder, t0)  # the rows of the bars already closed at t0: not part of the per-tick cost
    runs_before = (dict(cached.runs), dict(uncached.runs))
    lat = {"cached": np.empty(len(trades), np.int64), "uncached": np.empty(len(trades), np.int64)}
    clock = time.perf_counter_ns
    for i, (role, ts, p, q, s) in enumerate(trades):
        for name, builder, bridge in (("cached", builders[0], cached), ("uncached", builders[1], uncached)):
            builder.update(role, ts, p, q, s)
            a = clock()
            bridge.refresh(builder, ts)
            lat[name][i] = clock() - a
    span_s = (trades[-1][1] - trades[0][1]) / 1e6
    print(f"streaming: {len(trades):,} ticks over {span_s:.0f} s, 4 CNNs (window {cfg.window}, 16 channels)")
    for name, bridge, before in (("cached", cached, runs_before[0]), ("uncached", uncached, runs_before[1])):
        passes = {tf.value: bridge.runs[tf] - before[tf] for tf in CNN_TIMEFRAMES}
        print(f"  {name:<9} {percentiles_ms(lat[name])}   CNN passes {passes}")
    ratio = lat["uncached"].mean() / lat["cached"].mean()
    p50_ratio = np.percentile(lat["uncached"], 50) / max(np.percentile(lat["cached"], 50), 1)
    print(f"  speed-up of the cache: {ratio:.1f}x in mean latency, {p50_ratio:.0f}x at p50")


def offline_setup(days: int) -> tuple[CnnConfig, TimeframeData, TrainedCnn, npt.NDArray[np.int64]]:
    """The default 1m CNN (untrained), the 1m windows of a synthetic market and the rows of its last ``days``."""
    cfg = CnnConfig()
    frames = load_market(DataConfig(synthetic=SyntheticConfig(seed=2, history_days=days + 1, tick_days=0.0)))
    data = build_timeframe_data(frames, Timeframe.M1, cfg, FEATURES, with_labels=False)
    end = int(data.close_us_T[-1])
    return cfg, data, untrained(Timeframe.M1, cfg, 0), data.rows_in(TimeRange(end - days * US_PER_DAY, end + 1))


def offline(days: int, repeats: int) -> None:
    cfg, data, trained, rows = offline_setup(days)
    print(f"offline: {rows.size:,} windows of 1m bars ({days} days), window {cfg.window}, 16 channels")
    ours, (hidden, preds) = time_median("batched", lambda: compute_rows(trained, data, rows), repeats=repeats)
    head = rows[: min(1_000, rows.size)]

    def one_by_one() -> tuple[np.ndarray, np.ndarray]:
        out = [run_cnn(trained.model, data.windows(head[i : i + 1])) for i in range(head.size)]
        return np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out])

    base, (h1, p1) = time_median("one window per pass", one_by_one, repeats=3)
    if not (np.allclose(h1, hidden[: head.size], atol=1e-5) and np.allclose(p1, preds[: head.size], atol=1e-5)):
        raise SystemExit("batched and one-by-one rows disagree: benchmark invalid")
    # Compare rates: scale the baseline's time to the full month.
    scaled = type(base)(base.name, tuple(s * rows.size / head.size for s in base.seconds))
    report_ratio(ours, scaled, items=rows.size, unit="windows")


def main() -> None:
    args = quick_parser(__doc__ or "").parse_args()
    torch.set_num_threads(2)
    streaming(300 if args.quick else 3_000)
    offline(3 if args.quick else 30, max(3, args.repeats) if not args.quick else 3)


if __name__ == "__main__":
    main()
