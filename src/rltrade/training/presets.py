"""Named presets: config overrides applied *under* the user's config file (the file wins).

``demo``  the demo layout (every block, short windows, plus the recent-returns blocks), the structured
          encoder, walk-forward CNNs, a synthetic market (one day of trades) with a strong planted
          BTC→ETH lead, low fees: trains in minutes on 2 cores.
``real``  the real Binance 1m/1h/1d files of ``../shared/data/real`` on a 1-minute clock
          (:mod:`rltrade.training.presets_real`; ``ensure_real_store`` imports them first).
``full``  the 15,588-feature layout and the original design's hyperparameters (flat 1024 → 512
          network, lr 1e-4, γ 0.99, buffer 50,000, batch 128): hours of training; CI runs only a smoke
          run of a few dozen updates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rltrade.config import Config, ConfigError, read_yaml_mapping, validation_error
from rltrade.training.presets_real import REAL_PRESET

PRESETS: dict[str, dict[str, Any]] = {
    "demo": {
        "data": {
            "synthetic": {
                "history_days": 60,
                "tick_days": 1.0,
                "trades_per_second": 10.0,
                "annual_vol": 1.5,
                "signal": {"lag_s": 5, "strength": 0.8},
            }
        },
        "splits": {"train": 0.6, "validation": 0.2, "purge_s": 600, "embargo_s": 60},
        "features": {"layout": {"name": "demo", "returns": True}},
        "cnn": {
            "window": 48,
            "max_epochs": 3,
            "max_train_windows": 4_000,
            "max_val_windows": 2_000,
            "horizons": {"1s": 10, "1m": 60, "1h": 4, "1d": 1},
            "flat_quantile": 0.34,
        },
        "env": {"taker_fee": 0.0001, "impact_bps": 0.0, "half_spread_bps": 0.5, "episode_steps": 600},
        "reward": {"pnl_weight": 10_000.0},
        "agent": {
            "network": "structured",
            "encoder_channels": [8, 16],
            "encoder_patches": [4, 4],
            "encoder_hidden": [64],
            "lr": 5e-4,
            "buffer_size": 50_000,
            "batch_size": 64,
            "learning_starts": 1_000,
            "epsilon_steps": 6_000,
            "epsilon_end": 0.02,
            "target_update_interval": 250,
            "beta_steps": 15_000,
            "gamma": 0.9,
        },
        "train": {
            "total_steps": 15_000,
            "n_envs": 8,
            "eval_every": 2_500,
            "eval_max_steps": 3_600,
            "checkpoint_every": 2_500,
        },
    },
    "full": {
        "features": {"layout": {"name": "full"}},
        "agent": {"network": "flat"},
        "train": {"n_envs": 16},
    },
}


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in, recursively; ``over`` wins."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# The real preset trains the demo's agent (same network, optimiser, replay and budget) on a 1-minute clock.
PRESETS["real"] = deep_merge({"agent": PRESETS["demo"]["agent"], "train": PRESETS["demo"]["train"]}, REAL_PRESET)


def load_with_preset(path: Path | None, preset: str | None, overrides: dict[str, Any] | None = None) -> Config:
    """The config of ``path`` over the ``preset`` (either optional), with ``overrides`` on top."""
    raw: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; use one of: {', '.join(PRESETS)}")
        raw = deep_merge(raw, PRESETS[preset])
    if path is not None:
        raw = deep_merge(raw, read_yaml_mapping(path))
    raw = deep_merge(raw, overrides or {})
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(path if path is not None else f"preset {preset}", exc) from None
