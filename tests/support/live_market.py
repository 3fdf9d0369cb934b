"""A tiny synthetic market and run for the live tests: config, prepared features, trade events, a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from rltrade.config import Config
from rltrade.data.market import MarketFrames
from rltrade.live.events import TradeEvent
from rltrade.training.presets import deep_merge, load_with_preset
from tests.support.tiny_config import TINY_MARKET

TINY_LIVE: dict[str, Any] = deep_merge(
    TINY_MARKET,
    {
        "data": {"synthetic": {"mean_regime_hours": 36.0}},
        "cnn": {"enabled": False},
        "agent": {"learning_starts": 32, "buffer_size": 512, "batch_size": 16, "epsilon_steps": 50, "hidden": [64, 32]},
        "train": {
            "total_steps": 64,
            "n_envs": 2,
            "eval_every": 1_000,
            "eval_max_steps": 100,
            "checkpoint_every": 1_000,
        },
    },
)
"""About 1.4 h of synthetic trades (≈ 40 k ETH, 55 k BTC) on 12 days of bars; a 64-step run trains in ~3 s.
The regime duration stays the generator's default and the market ends at midnight (the demo preset's short
bounded regimes and 05:00 end would change the trade rate these tests are sized for).
No CNN stage (its blocks stay masked): the CNN tests add :data:`TINY_CNN`."""

TINY_CNN: dict[str, Any] = {
    "cnn": {
        "enabled": True,
        "timeframes": ["1m"],
        "window": 16,
        "conv_channels": [4, 4],
        "kernel_size": 3,
        "max_epochs": 2,
        "patience": 1,
        "batch_size": 128,
        "max_train_windows": 600,
        "max_val_windows": 300,
        "inference_batch": 256,
    }
}
"""A 1m CNN small enough to fit in about a second (as tests/support/cnn_models.py's)."""


def tiny_live_config(**extra: Any) -> Config:
    return load_with_preset(None, "demo", deep_merge(TINY_LIVE, extra))


def merged_trades(frames: MarketFrames, after_us: int, until_us: int | None = None) -> pl.DataFrame:
    """Both roles' trades with ``after_us < ts_us ≤ until_us`` in one frame, time-ordered, with a ``role`` column."""
    parts = []
    for role, df in frames.trades.items():
        sel = df.filter(pl.col("ts_us") > after_us)
        if until_us is not None:
            sel = sel.filter(pl.col("ts_us") <= until_us)
        parts.append(sel.with_columns(pl.lit(role).alias("role"), pl.lit(frames.symbols[role]).alias("symbol")))
    return pl.concat(parts).sort("ts_us", maintain_order=True)


def trade_events(frames: MarketFrames, after_us: int, until_us: int | None = None) -> list[TradeEvent]:
    """The trades of :func:`merged_trades` as events, received at their own time (``recv_us = ts_us``)."""
    df = merged_trades(frames, after_us, until_us)
    cols = ("role", "symbol", "trade_id", "ts_us", "price", "qty", "side")
    return [
        TradeEvent(role, sym, tid, ts, price, qty, side, ts)
        for role, sym, tid, ts, price, qty, side in df.select(cols).iter_rows()
    ]


def delay_role(events: list[TradeEvent], role: str, by_us: int) -> list[TradeEvent]:
    """``events`` in the order they arrive when ``role``'s stream lags ``by_us`` behind (each role stays in order)."""
    arrival = np.array([e.time_us + (by_us if e.role == role else 0) for e in events], np.int64)
    order: npt.NDArray[np.int64] = np.argsort(arrival, kind="stable")
    return [events[int(k)] for k in order]


def train_tiny_run(run_dir: Path, **extra: Any) -> Config:
    """Train the tiny config into ``run_dir`` (a complete run folder with ``checkpoints/last.pt``)."""
    from rltrade.training.loop import train

    cfg = tiny_live_config(**extra)
    train(cfg, run_dir, log=lambda _: None)
    return cfg
