"""The demo and full synthetic markets: multi-regime validation and test ranges for any seed, daily history
for the 1d block and the 1d CNN, a daily close inside the test range."""

from __future__ import annotations

import numpy as np
import pytest

from rltrade.config import Config
from rltrade.data.market import MarketFrames, load_market
from rltrade.data.splits import Fold, TimeRange, split_span
from rltrade.data.synthetic import true_regimes
from rltrade.data.synthetic_paths import regime_windows
from rltrade.features.bar_channels import BarChannelSpec
from rltrade.features.layout import build_layout
from rltrade.training.cnn_stage import _plan_timeframe
from rltrade.training.pipeline import decision_span
from rltrade.training.presets import load_with_preset
from rltrade.training.regimes import true_regime_labels
from rltrade.types import US_PER_HOUR, US_PER_SECOND, Timeframe

SEEDS = range(30)


@pytest.fixture(scope="module", params=["demo", "full"])
def preset_market(request: pytest.FixtureRequest) -> tuple[str, Config, MarketFrames, Fold]:
    cfg = load_with_preset(None, request.param)
    frames = load_market(cfg.data)
    splits = split_span(decision_span(frames, cfg), cfg.splits, step_us=cfg.env.step.us)
    return request.param, cfg, frames, splits


def _eval_ranges(splits: Fold) -> list[tuple[str, TimeRange]]:
    assert splits.validation is not None
    return [("validation", splits.validation), ("test", splits.test)]


def _regime_shares(regimes: dict[Timeframe, object], r: TimeRange) -> np.ndarray:
    t = np.arange(r.start_us, r.end_us, US_PER_SECOND)
    labels = true_regime_labels(regimes, t)  # type: ignore[arg-type]
    assert (labels >= 0).all()
    return np.bincount(labels, minlength=4) / labels.size


def test_validation_and_test_see_three_regimes_at_the_presets_seed(
    preset_market: tuple[str, Config, MarketFrames, Fold],
) -> None:
    name, _, frames, splits = preset_market
    for what, r in _eval_ranges(splits):
        share = _regime_shares(frames.extras["regimes"], r)
        assert (share >= 0.10).sum() >= 3, f"{name} {what}: true regime shares {share.round(2)}"


def test_validation_and_test_lengths_are_inside_the_schedules_guarantee(
    preset_market: tuple[str, Config, MarketFrames, Fold],
) -> None:
    name, cfg, _, splits = preset_market
    assert cfg.data.synthetic.regime_hours is not None
    lo_w, hi_w = regime_windows(cfg.data.synthetic.regime_hours)
    for what, r in _eval_ranges(splits):
        hours = r.duration_us / US_PER_HOUR
        assert lo_w <= hours <= hi_w, f"{name} {what}: {hours:.2f} h outside the guaranteed [{lo_w}, {hi_w}] h"


def test_validation_and_test_see_three_regimes_for_every_seed(
    preset_market: tuple[str, Config, MarketFrames, Fold],
) -> None:
    """The split's ranges do not depend on the seed (the decision clock is the tick period's seconds)."""
    name, cfg, _, splits = preset_market
    for seed in SEEDS:
        table = true_regimes(cfg.data.synthetic.model_copy(update={"seed": seed}))
        for what, r in _eval_ranges(splits):
            share = _regime_shares({Timeframe.M1: table}, r)
            assert (share >= 0.10).sum() >= 3, f"{name} seed {seed} {what}: true regime shares {share.round(2)}"


def test_daily_history_covers_the_1d_window_and_the_test_range_holds_a_daily_close(
    preset_market: tuple[str, Config, MarketFrames, Fold],
) -> None:
    name, cfg, frames, splits = preset_market
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
    for role in ("eth", "btc"):
        close = frames.bars[role][Timeframe.D1]["open_us"].to_numpy() + Timeframe.D1.us
        closed_before_start = int(np.sum(close <= splits.train.start_us))
        assert closed_before_start >= window + spec.warmup_bars, f"{name} {role}: {closed_before_start} days"
        inside_test = (close > splits.test.start_us) & (close <= splits.test.end_us)
        assert inside_test.sum() >= 1, f"{name} {role}: no daily close inside the test range"


def test_the_1d_cnn_serves_from_the_training_start_fitted_mostly_on_whole_windows(
    preset_market: tuple[str, Config, MarketFrames, Fold],
) -> None:
    """A fit row needs only its last bar past the warm-up; its window may reach back before the first bar (those
    rows masked). The history must make most of the first fit's windows whole (the full preset's 720 days: 61 %;
    its old 400: 27 %)."""
    name, cfg, frames, splits = preset_market
    planned = _plan_timeframe(frames, cfg, Timeframe.D1, splits, cfg.cnn.walk_forward_folds, cfg.cnn.min_fit_windows)
    assert not isinstance(planned, str), planned
    data, plans = planned
    assert plans[0].predict.start_us <= splits.train.start_us
    first = plans[0]
    assert first.validation is not None
    rows = np.concatenate([data.fit_rows(first.train), data.fit_rows(first.validation)])
    whole = float(np.mean(rows >= data.window - 1))
    assert whole > 0.5, f"{name}: {whole:.0%} of the 1d CNN's first-fit windows lie wholly after the first bar"
