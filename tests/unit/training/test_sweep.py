"""`rltrade sweep`: the search space's checks, and a tiny sequential sweep that never reads the test range.

The sweep runs in this process (``executor="local"``, the sequential baseline) so the market can be swapped
for one changed from the outer test range on: the trials, their scores, the chosen trial and the selection must
not move. Running the sweep again on its folder resumes the finished study (no new trial).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from rltrade.config import ConfigError
from rltrade.data.market import MarketFrames, load_market
from rltrade.data.splits import split_span
from rltrade.training.pipeline import SHORTFALL, decision_span
from rltrade.training.sweep import SweepError, SweepResult, inner_folds, nested, parse_space, run_sweep, run_trial_fold
from tests.support.tiny_config import tiny

SMALL: dict[str, Any] = {
    "agent": {"learning_starts": 32, "batch_size": 16, "buffer_size": 512},
    "train": {"total_steps": 48, "n_envs": 2, "eval_every": 24, "checkpoint_every": 1_000},
}
SPACE: dict[str, Any] = {
    "params": {
        "agent.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "agent.n_step": {"type": "int", "low": 1, "high": 3},
        "agent.encoder_hidden": {"type": "categorical", "choices": [[32], [64]]},
        "train.fee_multiplier": {"type": "float", "low": 1.0, "high": 3.0},
    },
    "trials": 2,
    "seeds": 2,
    "folds": 1,
    "top_k": 1,
    "top_seeds": 3,
}
HOUR = 3_600_000_000


def test_the_space_is_checked_against_the_config() -> None:
    cfg = tiny(**SMALL)
    space = parse_space(SPACE, cfg)
    assert [p.path for p in space.params] == list(SPACE["params"])
    assert space.params[2].choices == ((32,), (64,))
    with pytest.raises(ConfigError, match=r"env\.taker_fee cannot be searched"):
        parse_space({**SPACE, "params": {"env.taker_fee": {"type": "float", "low": 0.0, "high": 0.001}}}, cfg)
    held = parse_space({**SPACE, "params": {"env.min_hold_steps": {"type": "int", "low": 1, "high": 30}}}, cfg)
    assert held.params[0].path == "env.min_hold_steps"  # the one env field a sweep may search
    with pytest.raises(ConfigError, match="seeds must be at least 2"):
        parse_space({**SPACE, "seeds": 1}, cfg)
    with pytest.raises(ConfigError, match=r"agent\.gamma = 1\.5 is not a valid config value"):
        parse_space({**SPACE, "params": {"agent.gamma": {"type": "float", "low": 0.5, "high": 1.5}}}, cfg)
    with pytest.raises(ConfigError, match="needs type"):
        parse_space({**SPACE, "params": {"agent.lr": {"low": 1, "high": 2}}}, cfg)
    with pytest.raises(ConfigError, match="unknown keys budget"):
        parse_space({**SPACE, "budget": 3}, cfg)


def test_nested_paths() -> None:
    assert nested({"agent.lr": 1e-3, "agent.encoder_hidden": (64,), "seed": 1}) == {
        "agent": {"lr": 1e-3, "encoder_hidden": [64]},
        "seed": 1,
    }


def test_inner_folds_end_before_the_outer_test_range() -> None:
    cfg = tiny(**SMALL)
    frames = load_market(cfg.data)
    folds, outer = inner_folds(cfg, 2, frames=frames)
    assert outer == split_span(decision_span(frames, cfg), cfg.splits, step_us=cfg.env.step.us)
    assert outer.validation is not None
    for f in folds:
        assert f.validation is not None
        assert f.test.end_us <= outer.validation.end_us < outer.test.start_us


def _perturb_from(frames: MarketFrames, start_us: int) -> MarketFrames:
    """Every price at or after ``start_us`` multiplied by exp(0.3 · hours since start_us)."""

    def ramp(col: str) -> pl.Expr:
        hours = (pl.col(col) - start_us).cast(pl.Float64) / HOUR
        return pl.when(pl.col(col) >= start_us).then((0.3 * hours).exp()).otherwise(1.0)

    bars = {
        role: {
            tf: df.with_columns(pl.col(c) * ramp("open_us") for c in ("open", "high", "low", "close"))
            for tf, df in by.items()
        }
        for role, by in frames.bars.items()
    }
    trades = {role: df.with_columns(pl.col("price") * ramp("ts_us")) for role, df in frames.trades.items()}
    return MarketFrames(frames.symbols, trades, bars, frames.extras)


def _sweep(frames: MarketFrames, out: Path, mp: pytest.MonkeyPatch) -> SweepResult:
    cfg = tiny(**SMALL)
    mp.setattr("rltrade.training.pipeline.load_market", lambda *_a, **_k: frames)
    return run_sweep(cfg, parse_space(SPACE, cfg), out, executor="local", final=False, frames=frames)


def test_a_sweep_never_reads_the_test_range_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tiny(**SMALL)
    frames = load_market(cfg.data)
    _, outer = inner_folds(cfg, 1, frames=frames)
    caplog.set_level(logging.WARNING)
    clean = _sweep(frames, tmp_path / "clean", monkeypatch)
    # The history-too-short warning (the 1 s blocks start with the ticks) comes once per block for the whole
    # sweep, not once per run (2 trials × 2 seeds + 3 re-run seeds here).
    shortfalls = [r.getMessage() for r in caplog.records if getattr(r, SHORTFALL, False)]
    assert shortfalls and len(shortfalls) == len(set(shortfalls))
    assert len(shortfalls) == len({m.split(":")[0] for m in shortfalls})
    caplog.clear()
    changed = _sweep(_perturb_from(frames, outer.test.start_us), tmp_path / "changed", monkeypatch)

    assert len(clean.trials) == 2 and all(t["state"] in ("complete", "pruned") for t in clean.trials)
    assert clean.best_trial is not None and clean.best_trial == changed.best_trial
    assert [t["value"] for t in clean.trials] == [t["value"] for t in changed.trials]
    assert [t["params"] for t in clean.trials] == [t["params"] for t in changed.trials]
    assert clean.selection == changed.selection and clean.pbo == changed.pbo
    assert clean.selection["label"].startswith("selected: ")
    assert set(clean.selection["scores"]) >= {"flat", "buy_and_hold"}
    # ...while the test range itself did change.
    bh = [frames.bars["eth"], _perturb_from(frames, outer.test.start_us).bars["eth"]]
    tf = next(iter(bh[0]))
    assert not np.allclose(bh[0][tf]["close"].to_numpy(), bh[1][tf]["close"].to_numpy())

    again = _sweep(frames, tmp_path / "clean", monkeypatch)  # resumes: the study is finished
    assert [t["number"] for t in again.trials] == [0, 1]
    assert again.selection == clean.selection and again.best_trial == clean.best_trial


def test_a_trial_folder_is_resumed_unless_its_config_trains_another_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny(**SMALL)
    frames = load_market(cfg.data)
    monkeypatch.setattr("rltrade.training.pipeline.load_market", lambda *_a, **_k: frames)
    fold = inner_folds(cfg, 1, frames=frames)[0][0]
    base = cfg.model_dump(mode="json")
    first = run_trial_fold(base, fold, [0], str(tmp_path))
    # agent.overlap_update changes the wall time only (a folder written before it existed reads back "off").
    faster = {**base, "agent": {**base["agent"], "overlap_update": "auto"}}
    assert run_trial_fold(faster, fold, [0], str(tmp_path))["seed_scores"] == first["seed_scores"]
    other = {**base, "agent": {**base["agent"], "n_step": base["agent"]["n_step"] + 1}}
    with pytest.raises(SweepError, match=r"config differs in agent\.n_step\)"):
        run_trial_fold(other, fold, [0], str(tmp_path))
