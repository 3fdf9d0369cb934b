"""Feature coverage of a period: per state feature, how often its block is unmasked and how much it moves.

For the decision steps of a period (all of them, or ``max_steps`` evenly spaced ones when there are more),
the states are gathered exactly as the agent saw them (:meth:`BatchStateBuilder.gather`) and, per feature
``j`` of the layout's market blocks (the flags block is not a feature):

* ``unmasked_share``: the share of those steps at which the feature's block is available, its
  ``has_<block>`` flag set (a block whose last row is not a valid bar, a tick window with no trade, a
  CNN timeframe with no model, …: the state writes zeros there);
* ``mean`` and ``std``: of the feature over the steps at which its block is available (0 when never).

Written by the evaluation as ``eval/feature_coverage.parquet`` (columns ``block``, ``feature`` (index in
the state vector), ``unmasked_share``, ``mean``, ``std``, ``n_steps``); the scorecard
(:mod:`rltrade.training.scorecard`) applies the thresholds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import polars as pl

from rltrade.data.atomic import atomic_write
from rltrade.env.prices import PeriodData
from rltrade.features.state_batch import BatchStateBuilder

COVERAGE_FILE: Final = "feature_coverage.parquet"
MAX_STEPS: Final = 4096
"""At most this many evenly spaced steps are gathered (enough for a share and a standard deviation)."""
CHUNK: Final = 256


def feature_coverage(builder: BatchStateBuilder, period: PeriodData, *, max_steps: int = MAX_STEPS) -> pl.DataFrame:
    """Build the per-feature table of the module docstring over ``period``'s decision steps."""
    layout = builder.layout
    n = period.n_steps
    steps = np.unique(np.linspace(0, n - 1, min(n, max_steps)).round().astype(np.int64))
    blocks = [b for b in layout.blocks if b.kind != "flags"]
    flag_idx = np.array([layout.flag_index(f"has_{b.name}") for b in blocks], np.int64)
    # Per feature: which block flag governs it.
    owner = np.concatenate([np.full(b.size, k, np.int64) for k, b in enumerate(blocks)])
    cols = np.concatenate([np.arange(b.start, b.stop) for b in blocks])
    # Per-chunk counts, means and sums of squared deviations merged exactly (Chan et al.): a feature that
    # never changes gets a standard deviation of exactly 0, with no cancellation.
    count = np.zeros(cols.size)
    mean = np.zeros(cols.size)
    m2 = np.zeros(cols.size)
    for c0 in range(0, steps.size, CHUNK):
        states = builder.gather(period.clock.time_of(steps[c0 : c0 + CHUNK])).astype(np.float64)
        on_BF = (states[:, flag_idx] > 0.5)[:, owner]
        x_BF = states[:, cols]
        n_c = on_BF.sum(axis=0).astype(np.float64)
        mean_c = np.where(on_BF, x_BF, 0.0).sum(axis=0) / np.maximum(n_c, 1.0)
        m2_c = np.where(on_BF, (x_BF - mean_c) ** 2, 0.0).sum(axis=0)
        total = count + n_c
        delta = mean_c - mean
        share = np.divide(n_c, total, out=np.zeros_like(total), where=total > 0)
        m2 = m2 + m2_c + delta * delta * count * share
        mean = mean + delta * share
        count = total
    return pl.DataFrame(
        {
            "block": [blocks[k].name for k in owner],
            "feature": cols,
            "unmasked_share": count / steps.size,
            "mean": mean,
            "std": np.sqrt(m2 / np.maximum(count, 1.0)),
            "n_steps": np.full(cols.size, steps.size, np.int64),
        }
    )


def write_coverage(table: pl.DataFrame, folder: Path) -> Path:
    """``folder/feature_coverage.parquet``, written atomically."""
    path = folder / COVERAGE_FILE
    atomic_write(path, table.write_parquet)
    return path
