"""The live engine with the run's CNNs (streaming bridge, last walk-forward fold): the batch builder's states."""

from __future__ import annotations

import numpy as np
import pytest

from rltrade.features.state_stream import FLOAT_TOLERANCE
from rltrade.live.engine import EngineSettings, LiveEngine
from rltrade.models.bridge import StreamingCnnBridge
from rltrade.training.pipeline import prepare
from tests.support.live_market import TINY_CNN, tiny_live_config, trade_events

STEP = 1_000_000


@pytest.mark.slow
def test_states_with_cnn_rows_equal_the_batch_builders() -> None:
    cfg = tiny_live_config(**TINY_CNN)
    prep = prepare(cfg)  # fits the tiny 1m CNN walk-forward (about 10 s)
    assert prep.cnn is not None
    bridge = StreamingCnnBridge(
        {tf: (models[-1], len(models) - 1) for tf, models in prep.cnn.models.items()},
        embargo_us=cfg.splits.embargo_us,
    )
    t0 = int(prep.test_period.clock.start_us)
    engine = LiveEngine(
        prep.layout, cfg.features, cfg.env, prep.frames, t0, lambda obs: np.array([1]),
        stats=prep.stats, settings=EngineSettings(grace_s=None), cnn=bridge,
    )  # fmt: skip
    decisions = [d for e in trade_events(prep.frames, t0, t0 + 185 * STEP) for d in engine.on_event(e)]
    times = np.array([d.time_us for d in decisions])
    live = np.concatenate([d.obs[:, : prep.layout.size] for d in decisions])
    batch = prep.builder.gather(times)
    flags = prep.layout.block("flags").slice
    assert np.array_equal(live[:, flags], batch[:, flags])
    cnn = prep.layout.block("cnn_hidden").slice
    assert np.abs(batch[:, cnn]).max() > 0  # the CNN rows are served, not masked
    assert np.abs(live - batch).max() <= FLOAT_TOLERANCE
    # Once per closed 1m bar (the one at the warm start included), not once per decision.
    closes = len(np.unique((times - 1) // 60_000_000))
    assert sum(bridge.runs.values()) == closes
    # A warmed-up engine (each CNN's first row before the feed) takes the same observations bit for bit.
    warmed = LiveEngine(
        prep.layout, cfg.features, cfg.env, prep.frames, t0, lambda obs: np.array([1]),
        stats=prep.stats, settings=EngineSettings(grace_s=None),
        cnn=StreamingCnnBridge(bridge.models, embargo_us=cfg.splits.embargo_us),
    )  # fmt: skip
    warmed.warm_up()
    again = [d for e in trade_events(prep.frames, t0, t0 + 185 * STEP) for d in warmed.on_event(e)]
    assert len(again) == len(decisions)
    assert all(np.array_equal(a.obs, b.obs) for a, b in zip(again, decisions, strict=True))
