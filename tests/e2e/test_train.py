"""Training end to end: determinism, kill -9 and resume, the full preset's smoke run, backtest refusal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from rltrade.config import Config
from rltrade.data.splits import SplitError, TimeRange
from rltrade.training.bundle import open_bundle
from rltrade.training.evaluate import evaluate_run
from rltrade.training.loop import TrainResult, train
from rltrade.training.presets import deep_merge, load_with_preset
from tests.support.tiny_config import TINY_MARKET

TINY: dict[str, Any] = deep_merge(
    TINY_MARKET,
    {
        "cnn": {
            "window": 32,
            "conv_channels": [8, 8],
            "max_epochs": 1,
            "max_train_windows": 500,
            "max_val_windows": 200,
        },
        "agent": {"learning_starts": 64, "buffer_size": 2_000, "batch_size": 32, "epsilon_steps": 200},
        "train": {"total_steps": 240, "n_envs": 4, "eval_every": 120, "eval_max_steps": 200, "checkpoint_every": 40},
    },
)


def tiny(preset: str = "demo", **extra: Any) -> Config:
    return load_with_preset(None, preset, deep_merge(TINY, extra))


def _weights(run: Path) -> dict[str, torch.Tensor]:
    payload = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    return dict(payload["learner"]["online"])


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """One uninterrupted run of :func:`tiny`, shared by the same-seed and kill -9 tests (read-only to them)."""
    return train(tiny(), tmp_path_factory.mktemp("reference") / "run", log=lambda _: None)


def test_same_seed_same_run(tmp_path: Path, reference: TrainResult) -> None:
    again = train(tiny(), tmp_path / "again", log=lambda _: None)
    assert reference.updates == again.updates > 0
    assert reference.best_validation == again.best_validation
    assert _same(_weights(reference.run_dir), _weights(tmp_path / "again"))
    train(tiny(seed=1), tmp_path / "other", log=lambda _: None)
    assert not _same(_weights(reference.run_dir), _weights(tmp_path / "other"))


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path: Path, reference: TrainResult) -> None:
    cfg = tiny()
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(cfg.model_dump_json())
    run = tmp_path / "crash"
    script = (
        "import sys; from pathlib import Path; from rltrade.config import Config; "
        "from rltrade.training.loop import train; "
        f"cfg = Config.model_validate_json(Path({str(cfg_path)!r}).read_text()); "
        f"train(cfg, Path({str(run)!r}), log=lambda _: None)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONHASHSEED": "0"})
    deadline = time.monotonic() + 300
    last = run / "checkpoints" / "last.pt"
    while time.monotonic() < deadline and proc.poll() is None:
        if last.exists() and torch.load(last, weights_only=True)["counters"]["step"] >= 80:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the training process ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(last, weights_only=True)["counters"]["step"]
    assert 80 <= killed_at < 240
    resumed = train(cfg, run, resume=True, log=lambda _: None)
    assert resumed.steps == reference.steps and resumed.updates == reference.updates
    assert _same(_weights(run), _weights(reference.run_dir))
    best = json.loads((run / "best_validation.json").read_text())
    assert best["total_return"] == reference.best_validation["total_return"]  # type: ignore[index]


@pytest.mark.parametrize("preset", ["full", "full-flat"])
def test_full_preset_smoke_and_backtest_refuses_fitted_periods(tmp_path: Path, preset: str) -> None:
    cfg = tiny(
        preset,
        agent={"learning_starts": 32, "batch_size": 16, "buffer_size": 512, "hidden": [64, 32]},
        train={"total_steps": 48, "n_envs": 2, "eval_every": 1_000, "checkpoint_every": 1_000},
    )
    result = train(cfg, tmp_path / "full", log=lambda _: None)
    assert result.updates > 0
    bundle = open_bundle(tmp_path / "full")
    assert bundle.manifest["layout"]["size"] > 15_588
    metrics = evaluate_run(tmp_path / "full")
    assert {"agent", "flat", "buy_and_hold", "momentum", "random_0", "oracle"} <= set(metrics)
    assert metrics["flat"]["total_return"] == 0.0
    train_range = bundle.split("train")
    with pytest.raises(SplitError, match="overlaps the fitted range"):
        evaluate_run(tmp_path / "full", period=TimeRange(train_range.start_us, train_range.end_us))


def test_resume_without_a_checkpoint_says_it_starts_over_and_tensorboard_has_each_step_once(tmp_path: Path) -> None:
    from collections import Counter

    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    cfg = tiny(train={"total_steps": 80, "checkpoint_every": 40, "eval_every": 1_000})
    run = tmp_path / "run"
    train(cfg, run, stop_after_steps=30, log=lambda _: None)
    for ckpt in (run / "checkpoints").glob("*.pt"):
        ckpt.unlink()  # as if killed before the first checkpoint
    said: list[str] = []
    time.sleep(1.1)  # a new event file name (its timestamp has second resolution)
    resumed = train(cfg, run, resume=True, log=said.append)
    assert resumed.steps == 80
    assert any(f"no checkpoint in {run / 'checkpoints'} yet" in s and "starts from step 0" in s for s in said), said
    steps: Counter[tuple[str, int]] = Counter()
    for path in (run / "tensorboard").glob("events.out.tfevents.*"):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                steps[(value.tag, event.step)] += 1
    assert steps and max(steps.values()) == 1, [k for k, n in steps.items() if n > 1][:5]


def test_the_wall_time_limit_counts_training_not_the_preparation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    import rltrade.training.loop as loop

    offset = [0.0]
    real_start_run = loop.start_run

    def slow_start_run(*args: Any, **kwargs: Any) -> Any:
        out = real_start_run(*args, **kwargs)
        offset[0] += 10_000.0  # a preparation far longer than the limit
        return out

    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=lambda: time.perf_counter() + offset[0]))
    monkeypatch.setattr(loop, "start_run", slow_start_run)
    said: list[str] = []
    cfg = tiny(train={"total_steps": 40, "checkpoint_every": 20, "eval_every": 1_000, "max_wall_s": 600})
    assert train(cfg, tmp_path / "run", log=said.append).steps == 40
    assert not any("wall-time limit" in s for s in said), said


def test_block_norm_is_fitted_on_training_states_only_and_travels_with_the_checkpoint(tmp_path: Path) -> None:
    from rltrade.agent.block_norm import block_statistics
    from rltrade.features.clock import ClockStateSource
    from rltrade.training.loop import norm_rows
    from rltrade.training.pipeline import block_specs, prepare

    cfg = tiny(
        agent={"block_norm": True, "block_dropout": 0.2},
        train={"total_steps": 80, "eval_every": 1_000, "checkpoint_every": 40},
    )
    run = tmp_path / "run"
    train(cfg, run, log=lambda _: None)
    saved = _weights(run)["body.encoder.input_norm.mean_F"]
    bundle = open_bundle(run)
    prep = prepare(cfg, stats=bundle.feature_stats, splits=bundle.fold(), cnn_dir=run / "cnn")
    clock = prep.train_period.clock
    train_states = ClockStateSource(prep.builder, clock).gather(norm_rows(clock.n_steps))
    mean, _ = block_statistics(train_states, block_specs(prep.layout))
    torch.testing.assert_close(saved, torch.from_numpy(mean))
    assert saved.abs().sum() > 0
    assert "agent" in evaluate_run(run)  # the backtest loads the fitted statistics with the learner
