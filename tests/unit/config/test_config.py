"""Config: YAML loading, validation errors that name the field and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from rltrade.config import Config, ConfigError, load_config


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
