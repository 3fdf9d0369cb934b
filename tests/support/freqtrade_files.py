"""freqtrade data files written the way freqtrade's data handlers write them, for tests."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import polars as pl

T0_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def candles(n: int, step_ms: int, *, seed: int = 0, start_ms: int = T0_MS) -> pl.DataFrame:
    """freqtrade's candle frame: ``date`` (UTC datetime) and OHLCV, a seeded walk."""
    rng = np.random.default_rng(seed)
    close = np.round(2000 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))), 2)
    open_ = np.r_[close[0], close[:-1]]
    return pl.DataFrame(
        {
            "date": pl.Series((start_ms + step_ms * np.arange(n)) * 1000).cast(pl.Datetime("us", "UTC")),
            "open": open_,
            "high": np.maximum(open_, close) + 0.5,
            "low": np.minimum(open_, close) - 0.5,
            "close": close,
            "volume": np.round(rng.gamma(2.0, 3.0, n), 4),
        }
    )


def write(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` the way freqtrade's data handler for the path's extension does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".feather"):
        if isinstance(frame.schema[frame.columns[0]], pl.Datetime):  # freqtrade's feather dates are ns
            frame = frame.with_columns(pl.col(frame.columns[0]).cast(pl.Datetime("ns", "UTC")))
        frame.write_ipc(path)
    elif path.name.endswith(".parquet"):
        frame.write_parquet(path)
    else:
        first = frame.columns[0]
        if isinstance(frame.schema[first], pl.Datetime):
            frame = frame.with_columns(pl.col(first).dt.epoch("ms"))
        text = json.dumps(frame.rows()).encode()
        path.write_bytes(gzip.compress(text) if path.name.endswith(("gz", "jsongz")) else text)
    return path
