"""The CNN–RL bridge in the state: one CNN pass per bar close (offline and live), streaming == batch, causality."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import polars as pl
import torch

from rltrade.config import FeaturesConfig, LayoutConfig
from rltrade.data.align import last_closed_index
from rltrade.data.market import MarketFrames
from rltrade.features.cnn_blocks import CnnBlocks, CnnOutputs
from rltrade.features.layout import CNN_TIMEFRAMES, build_layout
from rltrade.features.lookahead import LookaheadCheck, derive_frames, sample_times
from rltrade.features.market_features import build_market_features
from rltrade.features.state_batch import BatchStateBuilder
from rltrade.features.state_stream import StreamingStateBuilder
from rltrade.models.blocks import cnn_block_fn, cnn_blocks_from_frames
from rltrade.models.bridge import StreamingCnnBridge, compute_rows, row_model_ids
from rltrade.models.dataset import build_timeframe_data
from rltrade.models.train import TrainedCnn
from rltrade.types import US_PER_SECOND, Timeframe
from tests.support.cnn_models import EMBARGO_US, FEATURES, MODEL_ID, cnn_market, tiny_models

DEMO = FeaturesConfig(layout=LayoutConfig(name="demo"))
CNN_TOLERANCE = 1e-3
"""Streaming bar channels match batch within 1e-4; through a CNN that stays well within 1e-3."""


class CallCounter:
    """Counts forward calls and windows through a model (a forward pre-hook, removed by ``close``)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.calls = 0
        self.windows = 0
        self._handle = model.register_forward_pre_hook(self._count)

    def _count(self, module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        self.calls += 1
        self.windows += int(args[0].shape[0])

    def close(self) -> None:
        self._handle.remove()


def test_offline_rows_run_each_cnn_once_per_bar_and_gathering_runs_none() -> None:
    frames = cnn_market()
    models = tiny_models()
    counters = {tf: CallCounter(m.model) for tf, (m, _) in models.items()}
    try:
        blocks = cnn_blocks_from_frames(frames, models, FEATURES, embargo_us=EMBARGO_US)
        for tf, counter in counters.items():
            # One pass per block of inference_batch bars (fixed size, padded): each bar runs exactly once.
            batch = models[tf][0].config.inference_batch
            n_bars = len(frames.bars["eth"][tf])
            assert counter.calls == -(-n_bars // batch) and counter.windows == counter.calls * batch, tf
            counter.windows = counter.calls = 0
        layout = build_layout(DEMO.layout)
        batch = BatchStateBuilder(layout, build_market_features(frames, layout, DEMO, cnn=blocks))
        start, end = frames.tick_span_us()  # type: ignore[misc]
        states = batch.gather(np.linspace(start, end, 2000).astype(np.int64))
        assert all(c.calls == 0 for c in counters.values()), "states read cached rows, never a model"
    finally:
        for c in counters.values():
            c.close()
    flags = states[:, layout.block("flags").slice]
    present = flags[:, layout.flag_names.index("cnn_model_present")]
    assert 0 < present.mean() < 1, "the 1 s model may serve only after its fit range: masked before"
    assert flags[:, layout.flag_names.index("has_cnn_hidden")].all()


def _stream(
    frames: MarketFrames, models: Mapping[Timeframe, tuple[TrainedCnn, int]], *, use_cache: bool, seconds: int
) -> tuple[StreamingCnnBridge, dict[str, float], int, int]:
    layout = build_layout(DEMO.layout)
    start, _ = frames.tick_span_us()  # type: ignore[misc]
    t0 = start + 1200 * US_PER_SECOND
    builder = StreamingStateBuilder(layout, DEMO, frames, t0)
    bridge = StreamingCnnBridge(models, embargo_us=EMBARGO_US, use_cache=use_cache)
    clock = t0 + US_PER_SECOND * np.arange(1, seconds + 1)
    blocks = cnn_blocks_from_frames(frames, models, FEATURES, embargo_us=EMBARGO_US, t_us_B=clock)
    batch = BatchStateBuilder(layout, build_market_features(frames, layout, DEMO, cnn=blocks))
    trades = (
        pl.concat([frames.trades[r].with_columns(pl.lit(r).alias("role")) for r in ("eth", "btc")])
        .filter(pl.col("ts_us") > t0)
        .sort("ts_us", maintain_order=True)
        .select("role", "ts_us", "price", "qty", "side")
        .rows()
    )
    worst: dict[str, float] = {}
    j, refreshes = 0, 0
    for t in clock:
        while j < len(trades) and trades[j][1] <= t:
            role, ts, p, q, s = trades[j]
            builder.update(role, ts, p, q, s)
            bridge.refresh(builder, ts)  # a tick: the cache keeps this at one CNN pass per bar close
            refreshes += 1
            j += 1
        bridge.refresh(builder, int(t))
        refreshes += 1
        live = builder.blocks_at(int(t))
        ref = batch.gather_blocks(np.array([t]))
        assert np.array_equal(live["flags"], ref["flags"]), f"flags differ at {t}"
        for name in ("cnn_hidden", "cnn_predictions"):
            worst[name] = max(worst.get(name, 0.0), float(np.max(np.abs(live[name] - ref[name]))))
    return bridge, worst, refreshes, t0


def test_streaming_runs_once_per_bar_close_and_matches_batch() -> None:
    frames = cnn_market()
    models = tiny_models()
    seconds = 120
    bridge, worst, refreshes, t0 = _stream(frames, models, use_cache=True, seconds=seconds)
    assert max(worst.values()) <= CNN_TOLERANCE, worst
    end = t0 + seconds * US_PER_SECOND
    for tf in CNN_TIMEFRAMES:
        bars = frames.bars["eth"][tf]
        closes = (bars["open_us"] + tf.us).to_numpy()
        new_closes = int(((closes > t0) & (closes <= end)).sum())
        # The bar already closed at t0 gets its row on the first refresh, then one pass per new close.
        assert bridge.runs[tf] == 1 + new_closes, tf
    assert bridge.runs[Timeframe.S1] == seconds + 1 and refreshes > 2 * seconds
    uncached, worst_uncached, refreshes_uncached, _ = _stream(frames, models, use_cache=False, seconds=20)
    assert all(n == refreshes_uncached for n in uncached.runs.values())
    assert max(worst_uncached.values()) <= CNN_TOLERANCE


def test_live_rows_carry_the_model_id_only_where_it_may_serve() -> None:
    frames = cnn_market()
    models = tiny_models()
    trained, _ = models[Timeframe.S1]
    data = build_timeframe_data(frames, Timeframe.S1, trained.config, FEATURES, with_labels=False)
    ids = row_model_ids(trained, data, np.arange(data.n_bars), MODEL_ID, EMBARGO_US)
    may = trained.may_serve(data.close_us_T, EMBARGO_US) & data.valid_T
    assert np.array_equal(ids == MODEL_ID, may) and 0 < may.mean() < 1


def _leaky_next_bar(frames: MarketFrames, t_B: npt.NDArray[np.int64]) -> Mapping[str, np.ndarray]:
    """Canary: the 1m CNN row of the bar *after* the last closed one (a window that ends in the future)."""
    trained, _ = tiny_models()[Timeframe.M1]
    data = build_timeframe_data(frames, Timeframe.M1, trained.config, FEATURES, with_labels=False)
    rows = np.minimum(last_closed_index(data.eth, t_B) + 1, data.n_bars - 1)
    hidden, preds = compute_rows(trained, data, rows)
    out = CnnOutputs(Timeframe.M1, t_B, hidden, preds, np.zeros(len(rows), np.int32))
    return {"preds": CnnBlocks({Timeframe.M1: out}).gather(t_B)[1]}


def test_cnn_blocks_pass_the_lookahead_check_and_a_leaky_cnn_is_caught() -> None:
    frames = cnn_market()
    models = tiny_models()
    check = LookaheadCheck()
    fn = cnn_block_fn(models, FEATURES, embargo_us=EMBARGO_US)
    check.register("cnn", fn)
    check.register("leak_cnn_next_bar", _leaky_next_bar)
    rng = np.random.default_rng(2)
    times = sample_times(frames, 4, rng, closes=1)
    report = check.run(frames, times, rng=rng)
    assert report.leaky() == ["leak_cnn_next_bar/preds"]
    cnn = {k: v for k, v in report.blocks.items() if k.startswith("cnn/")}
    assert set(cnn) == {"cnn/cnn_hidden", "cnn/cnn_predictions", "cnn/cnn_present", "cnn/cnn_flags"}
    # Exact (tolerance 0): the rows are bit-causal.
    assert check.tolerance("cnn/cnn_hidden") == 0.0
    assert all(r.checked == 2 * times.size and r.differing == 0 for r in cnn.values())
    # Not vacuous: at the checked times in the tick period the blocks hold model outputs.
    start, end = frames.tick_span_us()  # type: ignore[misc]
    ticks = times[(times >= start + 20 * 60 * US_PER_SECOND) & (times <= end)]
    assert ticks.size >= 2
    full = fn(derive_frames(frames, (end // US_PER_SECOND + 1) * US_PER_SECOND), ticks)
    assert full["cnn_present"][:, 1:].all() and np.abs(full["cnn_hidden"]).sum() > 0


def test_offline_rows_do_not_depend_on_the_rows_computed_with_them() -> None:
    """Bit-causal inference: a row is the same to the last bit alone, in any subset, or with every bar."""
    frames = cnn_market()
    trained, _ = tiny_models()[Timeframe.M1]
    data = build_timeframe_data(frames, Timeframe.M1, trained.config, FEATURES, with_labels=False)
    every = np.arange(data.n_bars)
    hidden, preds = compute_rows(trained, data, every)
    rng = np.random.default_rng(0)
    for rows in (every[-1:], every[-3:], rng.choice(every, 37, replace=False), every[: data.n_bars // 2]):
        h, p = compute_rows(trained, data, rows)
        assert np.array_equal(h, hidden[rows]) and np.array_equal(p, preds[rows])
    assert np.isfinite(hidden).all() and np.abs(hidden).sum() > 0


def test_the_live_bridge_serves_its_models_in_eval_mode() -> None:
    """Set once at construction, so that each pass (run_cnn) runs without switching modes."""
    models = tiny_models()
    for trained, _ in models.values():
        trained.model.train()
    bridge = StreamingCnnBridge(models, embargo_us=EMBARGO_US)
    assert not any(trained.model.training for trained, _ in bridge.models.values())
