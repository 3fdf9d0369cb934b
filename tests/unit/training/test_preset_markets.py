"""The demo and full synthetic markets: multi-regime validation and test ranges, daily history for the 1d block."""

from __future__ import annotations

import numpy as np
import pytest

from rltrade.data.market import load_market
from rltrade.data.splits import split_span
from rltrade.features.bar_channels import BarChannelSpec
from rltrade.features.layout import build_layout
from rltrade.training.pipeline import decision_span
from rltrade.training.presets import load_with_preset
from rltrade.training.regimes import true_regime_labels
from rltrade.types import US_PER_SECOND, Timeframe


@pytest.mark.parametrize("name", ["demo", "full"])
def test_validation_and_test_see_three_regimes_and_the_daily_history_covers_the_1d_window(name: str) -> None:
    cfg = load_with_preset(None, name)
    frames = load_market(cfg.data)
    splits = split_span(decision_span(frames, cfg), cfg.splits, step_us=cfg.env.step.us)
    for what, r in (("validation", splits.validation), ("test", splits.test)):
        assert r is not None
        t = np.arange(r.start_us, r.end_us, US_PER_SECOND)
        labels = true_regime_labels(frames.extras["regimes"], t)
        share = np.bincount(labels[labels >= 0], minlength=4) / labels.size
        assert (share >= 0.10).sum() >= 3, f"{name} {what}: true regime shares {share.round(2)}"
    # Every daily bar of the 1d block's window at the training start is past the indicators' warm-up.
    layout = build_layout(cfg.features.layout)
    window = layout.block("eth_1d").shape[0]
    f = cfg.features
    spec = BarChannelSpec(
        rsi_period=f.rsi_period,
        macd_fast=f.macd_fast,
        macd_slow=f.macd_slow,
        macd_signal=f.macd_signal,
        atr_period=f.atr_period,
    )
    warmup = spec.warmup_bars
    daily = frames.bars["eth"][Timeframe.D1]["open_us"].to_numpy()
    closed_before_start = int(np.sum(daily + Timeframe.D1.us <= splits.train.start_us))
    assert closed_before_start >= window + warmup, f"{name}: {closed_before_start} daily bars before training"
