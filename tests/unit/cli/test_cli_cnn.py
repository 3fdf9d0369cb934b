"""``rltrade cnn train`` and ``rltrade cnn eval`` end to end on a tiny synthetic market."""

from __future__ import annotations

from pathlib import Path

import pytest

from rltrade.cli import main
from rltrade.models.io import load_cnn
from rltrade.types import Timeframe

CONFIG = """
data:
  synthetic: {history_days: 6, tick_days: 0.01}
splits: {purge_s: 600, embargo_s: 60}
"""
CNN = """
cnn:
  window: 16
  conv_channels: [4]
  max_train_windows: 500
  horizons: {1s: 4, 1m: 10, 1h: 2, 1d: 1}
"""


@pytest.fixture
def configs(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "rltrade.yaml").write_text(CONFIG)
    (tmp_path / "cnn.yaml").write_text(CNN)
    return tmp_path / "rltrade.yaml", tmp_path / "cnn.yaml"


def test_train_writes_a_model_file_and_tensorboard_logs(
    configs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, cnn = configs
    out = tmp_path / "run"
    argv = ["cnn", "train", "-c", str(cfg), "--cnn-config", str(cnn), "-t", "1m", "--epochs", "1", "--out", str(out)]
    assert main(argv) == 0
    trained = load_cnn(out / "cnn_1m.pt")
    assert trained.tf is Timeframe.M1 and trained.config.window == 16 and trained.info.epochs == 1
    assert any((out / "tensorboard" / "1m").iterdir())
    assert "CNN training" in capsys.readouterr().out


def test_eval_prints_the_accuracy_table(configs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    cfg, cnn = configs
    argv = ["cnn", "eval", "-c", str(cfg), "--cnn-config", str(cnn), "-t", "1m", "--epochs", "1", "--folds", "2"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "persistence" in text and "majority" in text and "bal. acc" in text


def test_bad_cnn_config_and_missing_bars_exit_2(
    configs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, _ = configs
    bad = tmp_path / "bad.yaml"
    bad.write_text("window: 3\n")
    assert main(["cnn", "eval", "-c", str(cfg), "--cnn-config", str(bad)]) == 2
    assert "window" in capsys.readouterr().err
    no_1s = tmp_path / "no1s.yaml"
    no_1s.write_text(CONFIG.replace("data:\n", "data:\n  timeframes: [1m, 1h, 1d]\n"))
    assert main(["cnn", "train", "-c", str(no_1s), "-t", "1s", "--out", str(tmp_path / "x")]) == 2
    assert "needs 1s bars" in capsys.readouterr().err
