"""Train, walk-forward and backtest on a stored range; the real-data folder; presets and the user's store."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rltrade.cli import main
from rltrade.cli.train import range_overrides, run_data_step
from rltrade.cli.walkforward import load_cfg
from rltrade.data.market import MarketFrames
from rltrade.data.real import REAL_DATA_DIR
from rltrade.data.schema import BAR_SCHEMA, conform
from rltrade.data.splits import TimeRange
from rltrade.features.layout import build_layout
from rltrade.training.evaluate import _covering
from rltrade.training.pipeline import warn_short_history
from rltrade.training.presets import load_with_preset
from rltrade.types import Timeframe

T0 = 1_722_470_400_000_000  # 2024-08-01 00:00 UTC


def test_from_and_to_set_the_config_range(tmp_path: Path) -> None:
    cfg = load_cfg(None, "demo", None, "2024-08-01", "2024-09-01T12:00")
    assert cfg.data.range_us == (T0, T0 + 31 * 86_400_000_000 + 12 * 3_600_000_000)
    assert range_overrides(None, None) == {}
    bad = tmp_path / "c.yaml"
    bad.write_text("data:\n  store: x\n")
    assert main(["train", "-c", str(bad), "--from", "2024-09-01", "--to", "2024-08-01"]) == 2


def test_backtest_needs_both_ends_of_the_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--run", "nowhere", "--from", "2024-08-01"]) == 2
    assert "--from START --to END" in capsys.readouterr().err


def test_a_backtest_period_after_the_training_range_is_loaded_too() -> None:
    cfg = load_cfg(None, "demo", None, "2024-08-01", "2024-08-10")
    later = TimeRange(T0 + 20 * 86_400_000_000, T0 + 25 * 86_400_000_000)
    assert _covering(cfg, later).data.range_us == (T0, later.end_us)
    assert _covering(cfg, TimeRange(T0, T0 + 86_400_000_000)) is cfg


def test_the_real_data_folder_is_found_from_the_package_not_the_working_directory(tmp_path: Path) -> None:
    import rltrade

    repo = Path(rltrade.__file__).resolve().parents[2]
    assert repo.parent / "shared" / "data" / "real" == REAL_DATA_DIR
    here = Path.cwd()
    try:
        os.chdir(tmp_path)
        from rltrade.data import real

        assert real.REAL_DATA_DIR.is_absolute()
    finally:
        os.chdir(here)


def test_a_preset_never_imports_into_a_store_the_user_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "my_store"
    cfg_file = tmp_path / "my.yaml"
    cfg_file.write_text(f"data:\n  store: {mine}\n")
    cfg = load_with_preset(cfg_file, "real")
    run_data_step(cfg, "real", tmp_path / "no_real_data_here")  # would raise if it tried to import
    assert "nothing is imported" in " ".join(capsys.readouterr().out.split())
    assert not mine.exists()


def _bars(tf: Timeframe, first_us: int, n: int) -> pl.DataFrame:
    close = np.full(n, 100.0)
    frame = pl.DataFrame(
        {"open_us": first_us + np.arange(n, dtype=np.int64) * tf.us, "open": close, "high": close, "low": close}
    ).with_columns(close=pl.col("open"), volume=pl.lit(1.0))
    return conform(frame, BAR_SCHEMA, what="test")


def test_short_history_before_the_train_start_is_a_warning_naming_block_bars_and_until_when(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = load_with_preset(None, "real")
    layout = build_layout(cfg.features.layout)
    start = T0 + 100 * Timeframe.D1.us
    by_tf = {
        Timeframe.M1: _bars(Timeframe.M1, start - 2_000 * Timeframe.M1.us, 3_000),
        Timeframe.H1: _bars(Timeframe.H1, start - 2_000 * Timeframe.H1.us, 2_100),
        Timeframe.D1: _bars(Timeframe.D1, start - 20 * Timeframe.D1.us, 120),
    }
    frames = MarketFrames({"eth": "ETHUSDT", "btc": "BTCUSDT"}, {}, {"eth": by_tf, "btc": by_tf})
    with caplog.at_level(logging.WARNING, logger="rltrade.training.pipeline"):
        warn_short_history(frames, layout, cfg, start)
    (record,) = caplog.records
    text = record.getMessage()
    assert text.startswith("eth_1d: 20 1d bars before the train start 2024-11-09 00:00 UTC")
    assert "need 81 (61 missing), so the block stays partly masked until 2025-01-09 00:00 UTC" in text
