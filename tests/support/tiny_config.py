"""A tiny demo-preset config for tests that train: a 1.4-hour tick span, a few hundred steps, seconds per run."""

from __future__ import annotations

from typing import Any

from rltrade.config import Config
from rltrade.training.presets import deep_merge, load_with_preset

TINY_MARKET: dict[str, Any] = {
    "data": {
        "synthetic": {
            "history_days": 12,
            "tick_days": 0.06,
            "end": "2026-01-01",
            "regime_hours": None,
            "mean_regime_hours": 2.0,
        }
    },
    "splits": {"purge_s": 120, "embargo_s": 30},
}
"""The market the tests that train were sized for: 1.4 h of trades on 12 days of bars, ending at midnight,
regimes of 2 h on average (not the demo preset's 400 days, 05:00 end and short bounded regimes)."""

TINY: dict[str, Any] = deep_merge(
    TINY_MARKET,
    {
        "cnn": {"enabled": False},
        "agent": {"learning_starts": 64, "buffer_size": 2_000, "batch_size": 32, "epsilon_steps": 200},
        "train": {"total_steps": 240, "n_envs": 4, "eval_every": 120, "eval_max_steps": 200, "checkpoint_every": 120},
    },
)
"""Overrides of the demo preset (as in tests/e2e/test_train.py), without the CNN stage: fitting the CNNs would
cost a minute per run (their own tests cover them); the state's CNN blocks stay in the layout, masked."""


def tiny(**extra: Any) -> Config:
    """The demo preset with :data:`TINY` and ``extra`` merged on top."""
    return load_with_preset(None, "demo", deep_merge(TINY, extra))
