"""A small evaluated run folder for the report tests, built in about a second without training.

:func:`make_report_run` writes what ``rltrade train`` + ``rltrade backtest`` leave behind (manifest,
config, layout, feature stats, ``eval/`` files, TensorBoard scalars) for a tiny synthetic market. The
"agent" is the momentum rule run through the real backtest engine, so the steps, trades and metrics
files have exactly the shapes the report reads; no checkpoint is written (the report needs none).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rltrade.config import Config
from rltrade.data.atomic import write_json_atomic
from rltrade.training.backtest import backtest_actions
from rltrade.training.baselines import buy_and_hold_actions, flat_actions, momentum_actions
from rltrade.training.bundle import create_bundle
from rltrade.training.pipeline import prepare
from rltrade.training.presets import deep_merge, load_with_preset
from tests.support.tiny_config import TINY_MARKET

RUN_MARKET: dict[str, Any] = deep_merge(
    TINY_MARKET,
    {"features": {"layout": {"cnn": False}}},  # no CNN stage: building the folder takes a second
)

TB_TAGS = ("train/loss", "train/q_mean", "validation/total_return", "reward/cnn")
"""Scalars the fake run logs; ``reward/cnn`` is all zeros (a reward term with weight 0)."""


def tiny_config() -> Config:
    return load_with_preset(None, "demo", RUN_MARKET)


CNN_METRICS: dict[str, Any] = {
    "timeframes": {
        "1m": {
            "folds": [],
            "pooled": {
                "model": {
                    "n": 500,
                    "accuracy": 0.41,
                    "balanced_accuracy": 0.4,
                    "log_loss": 1.09,
                    "direction_accuracy": 0.52,
                    "n_directional": 300,
                },
                "majority": {
                    "n": 500,
                    "accuracy": 0.38,
                    "balanced_accuracy": 0.33,
                    "log_loss": 1.1,
                    "direction_accuracy": 0.5,
                    "n_directional": 300,
                },
            },
        }
    },
    "skipped": {"1s": "too little history"},
}
"""A ``cnn/metrics.json`` in the shape the CNN stage writes (rltrade.training.cnn_stage)."""


def make_report_run(root: Path, *, tensorboard: bool = True, tables: bool = False) -> Path:
    """An evaluated run folder at ``root`` (module docstring); ``tables`` adds regimes, ablation and CNN files."""
    cfg = tiny_config()
    prep = prepare(cfg)
    splits = {"train": prep.splits.train, "test": prep.splits.test}
    if prep.splits.validation is not None:
        splits["validation"] = prep.splits.validation
    fitted = [r for r in (prep.splits.train, prep.splits.validation) if r is not None]
    bundle = create_bundle(root, cfg, prep.layout, prep.stats, prep.frames, splits=splits, fitted=fitted)
    bundle.record("training", {"steps": 400, "updates": 300})
    per = prep.test_period
    agent = backtest_actions(per, momentum_actions(per, 20), cfg.env)
    out = root / "eval"
    out.mkdir()
    agent.steps.write_parquet(out / "agent_steps.parquet")
    agent.trades.write_parquet(out / "agent_trades.parquet")
    metrics = {
        "agent": {**agent.metrics, "total_return_ci": [-0.01, 0.02]},
        "buy_and_hold": backtest_actions(per, buy_and_hold_actions(per), cfg.env).metrics,
        "flat": backtest_actions(per, flat_actions(per), cfg.env).metrics,
    }
    write_json_atomic(out / "metrics.json", {"period": prep.splits.test.to_dict(), "metrics": metrics})
    if tables:
        write_json_atomic(
            out / "regimes.json",
            {
                "title": "Per regime",
                "columns": ["regime", "steps", "agent return"],
                "rows": [
                    {"regime": "range", "steps": 900, "agent return": {"value": 0.01, "lo": -0.02, "hi": 0.03}},
                    {"regime": "trend up", "steps": 100, "agent return": -0.004},
                ],
            },
        )
        (out / "ablation.json").write_text(
            json.dumps([{"removed": "ticks", "state_blocks_removed": ["eth_ticks"], "test_return": -0.002}])
        )
        (root / "cnn").mkdir()
        (root / "cnn" / "metrics.json").write_text(json.dumps(CNN_METRICS))
    if tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(root / "tensorboard"))
        rng = np.random.default_rng(0)
        for step in range(50, 2_001, 50):
            writer.add_scalar("train/loss", float(1.0 / step + rng.random() * 1e-3), step)
            writer.add_scalar("train/q_mean", float(np.log(step)), step)
            writer.add_scalar("reward/cnn", 0.0, step)
            if step % 500 == 0:
                writer.add_scalar("validation/total_return", float(rng.normal(0, 0.01)), step)
        writer.close()
    return root
