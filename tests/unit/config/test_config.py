"""Config: YAML loading, validation errors that name the field and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from rltrade.config import (
    LAYOUT_NAMES,
    WALL_TIME_ONLY,
    Config,
    ConfigError,
    EnvConfig,
    TradingTerms,
    describe_differences,
    load_config,
    result_differences,
    trade_cost_fraction,
)
from rltrade.env.fills import CostModel
from rltrade.types import US_PER_SECOND, ceil_to_grid


def test_defaults_are_valid_and_frozen() -> None:
    cfg = Config()
    assert cfg.data.symbol == "ETHUSDT" and cfg.data.reference == "BTCUSDT"
    assert cfg.data.synthetic.signal is not None
    with pytest.raises(ValueError, match="frozen"):
        cfg.seed = 3  # type: ignore[misc]


def test_yaml_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("seed: 5\ndata:\n  synthetic:\n    history_days: 30\n    signal: null\n")
    cfg = load_config(path)
    assert cfg.seed == 5
    assert cfg.data.synthetic.history_days == 30
    assert cfg.data.synthetic.signal is None


def test_errors_name_file_and_every_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  synthetic:\n    history_days: -1\n  symbl: ETHUSDT\nsplits:\n  train: 0.9\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert str(path) in text
    assert "data.synthetic.history_days" in text
    assert "data.symbl" in text
    assert "train + validation" in text


def test_unreadable_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path)


def test_commented_default_yaml_loads_back_to_the_defaults(tmp_path: Path) -> None:
    from rltrade.config import render_commented_yaml

    text = render_commented_yaml()
    assert "# Master seed" in text
    path = tmp_path / "default.yaml"
    path.write_text(text)
    assert load_config(path) == Config()


def test_the_learner_seed_is_agent_seed_when_set_else_the_top_level_seed() -> None:
    assert Config(seed=7).learner_config.seed == 7
    assert Config.model_validate({"seed": 7, "agent": {"seed": 3}}).learner_config.seed == 3
    assert Config(seed=7).learner_config.model_copy(update={"seed": None}) == Config(seed=7).agent


def test_derived_values_have_one_home() -> None:
    cfg = Config.model_validate({"splits": {"purge_s": 90, "embargo_s": 2}})
    assert (cfg.splits.purge_us, cfg.splits.embargo_us) == (90 * US_PER_SECOND, 2 * US_PER_SECOND)
    assert [ceil_to_grid(t, 10) for t in (-11, -10, 0, 1, 10, 11)] == [-10, -10, 0, 10, 10, 20]
    env = EnvConfig(taker_fee=0.001, half_spread_bps=2.0, impact_bps=4.0, position_fraction=0.5)
    q = 2 * 0.5
    assert trade_cost_fraction(q, 0.001, 2.0, 4.0) == pytest.approx(q * (0.001 + (2.0 + 4.0 * q) * 1e-4))
    assert CostModel.from_config(env).cost_fraction([2.0])[0] == trade_cost_fraction(q, 0.001, 2.0, 4.0)
    assert EnvConfig().terms._fields == tuple(f for f in TradingTerms._fields if f in EnvConfig.model_fields)
    assert set(LAYOUT_NAMES) == {"full", "demo", "basic"}


def test_result_differences_name_every_changed_field_but_the_wall_time_ones() -> None:
    base = Config()
    assert result_differences(base, Config()) == []
    other = Config.model_validate(
        {"seed": 3, "agent": {"lr": 3e-4, "overlap_update": "on"}, "train": {"n_envs": 4}, "env": {"taker_fee": 0.0}}
    )
    assert result_differences(base, other) == ["agent.lr", "env.taker_fee", "seed", "train.n_envs"]
    assert result_differences(other, base) == result_differences(base, other)
    assert "agent.overlap_update" in WALL_TIME_ONLY
    only_speed = Config.model_validate({"agent": {"overlap_update": "auto"}})
    assert only_speed != base and result_differences(base, only_speed) == []
    assert describe_differences(["a", "b", "c"], limit=2) == "a, b and 1 more"
