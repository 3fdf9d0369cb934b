"""The full presets: ``full`` is the practical one (structured encoder, multi-factor reward, scaled CNN
budget, device auto); ``full-flat`` keeps the original design's literal network and PnL-only reward."""

from __future__ import annotations

from pathlib import Path

import pytest

from rltrade.config import ConfigError
from rltrade.env.reward import MULTI_FACTOR_REWARD
from rltrade.training.presets import load_with_preset


def test_full_trains_the_structured_encoder_on_the_multi_factor_reward() -> None:
    cfg = load_with_preset(None, "full")
    assert cfg.features.layout.name == "full"
    assert (cfg.agent.network, cfg.agent.batch_size, cfg.train.n_envs) == ("structured", 128, 16)
    assert cfg.agent.block_norm and cfg.agent.block_dropout == 0.2, "both chosen on validation in bench_rich_state"
    assert cfg.agent.encoder_recent_rows == 30, "chosen on validation in bench_rich_state, over 0 and 10"
    assert cfg.agent.encoder_recent_diff, "their changes: chosen on validation in bench_rich_state over the rows"
    assert cfg.train.device == "auto" and not cfg.train.mixed_precision
    assert cfg.reward.volatility_mode == "multiplier" and not cfg.reward.pnl_only
    for name, value in MULTI_FACTOR_REWARD.items():
        assert getattr(cfg.reward, name) == value, name
    assert cfg.cnn.train_window_fraction == 0.05 and cfg.cnn.max_train_windows == 20_000


def test_full_flat_is_the_original_design_and_the_other_presets_keep_the_defaults() -> None:
    flat = load_with_preset(None, "full-flat")
    assert flat.agent.network == "flat" and flat.agent.hidden == (1024, 512) and not flat.agent.block_norm
    assert flat.reward.pnl_only and flat.reward.volatility_mode == "additive"
    assert flat.train.device == "cpu" and flat.cnn.train_window_fraction is None
    for name in ("demo", "real"):
        cfg = load_with_preset(None, name)
        assert cfg.train.device == "cpu" and cfg.cnn.train_window_fraction is None
    # the demo's reward was chosen on validation at its budget (bench_reward_ablation); the real one stays PnL-only
    assert not load_with_preset(None, "demo").reward.pnl_only and load_with_preset(None, "real").reward.pnl_only


def test_an_unknown_device_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"train\.device"):
        load_with_preset(None, "full", {"train": {"device": "gpu"}})


def test_the_readme_scored_full_run_config_is_the_benchmark_budget_on_the_full_preset() -> None:
    from benchmarks.bench_rich_state import variant_config

    cfg = load_with_preset(Path(__file__).resolve().parents[3] / "configs" / "full-15k.yaml", "full")
    bench = variant_config("demo+norm+dropout+recent30diff", 0, 15_000, 2.0, "full", 7_200)  # the preset's agent
    assert cfg.model_dump() == bench.model_dump()


@pytest.mark.parametrize("recent_rows", [None, 0, 10])
def test_the_speed_benchmark_contenders_are_valid_configs_of_the_current_presets(recent_rows: int | None) -> None:
    from benchmarks.bench_full_speed import AFTER, BEFORE, BREAKDOWN, configs

    cfgs = configs(True, recent_rows, breakdown=True)  # raises ConfigError when an option combination is refused
    assert set(cfgs) == {BEFORE, AFTER, *BREAKDOWN}
    after = cfgs[AFTER].agent
    assert after.encoder_recent_rows == (30 if recent_rows is None else recent_rows)
    assert after.encoder_recent_diff == (recent_rows != 0), "the preset's changes, unless the rows are off"
    assert not cfgs["after with rows, not changes"].agent.encoder_recent_diff
    assert cfgs["after on one thread"].agent.overlap_update == "off" and after.overlap_update == "auto"
    assert cfgs["after on one thread"].agent.backward_threads is None and after.backward_threads == 2
