"""The look-ahead check: recompute every state block from raw data cut at t, and with the future changed.

For each sampled time ``t`` the check recomputes the blocks *from the raw inputs* (trades and 1m bars)
through the whole pipeline (resampling to 1s/1h/1d, indicators, pivots, regime, state gathering):

1. **truncated**: from the raw data as known at ``t`` (:meth:`MarketFrames.until`);
2. **perturbed**: from the raw data with everything after ``t`` randomly changed (prices scaled,
   volumes rescaled), at full length;

and compares each block at ``t`` with the full computation. A causal block is identical in all three;
any difference beyond float rounding (``atol``) is reported for that block. Zero differences is the bar.

Blocks register as functions ``(frames, t_us_B) -> {block name: values [B, ...]}`` in a
:class:`LookaheadCheck`; the standard state blocks come from :func:`state_blocks`, later stages (the
CNN bridge) register theirs, and the canaries in the tests register deliberately leaky ones, which the
check must flag.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import polars as pl

from rltrade.config import FeaturesConfig
from rltrade.data.market import MarketFrames
from rltrade.data.resample import resample_bars_with_report, trades_to_bars
from rltrade.features.layout import StateLayout
from rltrade.features.market_features import FeatureStats, build_market_features
from rltrade.features.state_batch import BatchStateBuilder
from rltrade.types import Timeframe

BlockFn = Callable[[MarketFrames, npt.NDArray[np.int64]], Mapping[str, npt.NDArray[np.floating]]]


def derive_frames(raw: MarketFrames, end_us: int) -> MarketFrames:
    """Rebuild the derived bars from the raw inputs: 1s from trades, 1h and 1d from 1m.

    ``end_us`` bounds the 1s bars (every second closed by it exists, empty ones filled), so a cut at
    ``t`` yields exactly the 1s bars a live process would have closed by ``t``.
    """
    bars: dict[str, dict[Timeframe, pl.DataFrame]] = {}
    for role, by_tf in raw.bars.items():
        out = dict(by_tf)
        trades = raw.trades.get(role)
        if trades is not None and trades.height and Timeframe.S1 in by_tf:
            end = end_us // Timeframe.S1.us * Timeframe.S1.us
            first = int(trades.item(0, "ts_us"))
            if end > first:
                out[Timeframe.S1] = trades_to_bars(trades, Timeframe.S1, end_us=end)
        m1 = by_tf.get(Timeframe.M1)
        if m1 is not None and m1.height:
            # The forming hour and day are incomplete by design: dropped, as the batch data never has them.
            if Timeframe.H1 in by_tf:
                out[Timeframe.H1], _ = resample_bars_with_report(m1, Timeframe.M1, Timeframe.H1)
            if Timeframe.D1 in by_tf and Timeframe.H1 in out:
                out[Timeframe.D1], _ = resample_bars_with_report(out[Timeframe.H1], Timeframe.H1, Timeframe.D1)
        bars[role] = out
    return MarketFrames(raw.symbols, raw.trades, bars)


def perturb_after(raw: MarketFrames, t_us: int, rng: np.random.Generator, *, scale: float = 0.02) -> MarketFrames:
    """``raw`` with every trade after ``t_us`` and every bar not closed by ``t_us`` randomly changed.

    Each changed trade gets its own price factor; each changed bar scales its OHLC by one factor (so it
    stays a valid bar) and its volume by another. Nothing at or before ``t_us`` changes.
    """
    trades: dict[str, pl.DataFrame] = {}
    for role, df in raw.trades.items():
        after = (df["ts_us"] > t_us).to_numpy()
        f = np.where(after, np.exp(scale * rng.standard_normal(df.height)), 1.0)
        trades[role] = df.with_columns(
            pl.col("price") * pl.Series(f), pl.col("qty") * pl.Series(np.where(after, 1.5, 1.0))
        )
    bars: dict[str, dict[Timeframe, pl.DataFrame]] = {}
    for role, by_tf in raw.bars.items():
        bars[role] = {}
        for tf, df in by_tf.items():
            future = ((df["open_us"] + tf.us) > t_us).to_numpy()
            fp = pl.Series(np.where(future, np.exp(scale * rng.standard_normal(df.height)), 1.0))
            fv = pl.Series(np.where(future, np.exp(rng.standard_normal(df.height)), 1.0))
            bars[role][tf] = df.with_columns(
                *(pl.col(c) * fp for c in ("open", "high", "low", "close")),
                pl.col("volume") * fv,
            )
    return MarketFrames(raw.symbols, trades, bars)


def state_blocks(layout: StateLayout, cfg: FeaturesConfig, stats: FeatureStats = FeatureStats()) -> BlockFn:
    """Return the standard block function: build the market features from ``frames``, gather each block at ``t``."""

    def compute(frames: MarketFrames, t_B: npt.NDArray[np.int64]) -> Mapping[str, npt.NDArray[np.floating]]:
        features = build_market_features(frames, layout, cfg, stats)
        return BatchStateBuilder(layout, features).gather_blocks(t_B)

    return compute


@dataclass
class BlockResult:
    """How one block fared: checks made, times with any difference, the largest difference."""

    checked: int = 0
    differing: int = 0
    max_abs_diff: float = 0.0
    first_bad_t_us: int | None = None

    @property
    def ok(self) -> bool:
        """Whether no sampled time differed."""
        return self.differing == 0


@dataclass
class LookaheadReport:
    """Per block results of :meth:`LookaheadCheck.run`."""

    times_us: list[int]
    blocks: dict[str, BlockResult] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether no block leaked."""
        return all(b.ok for b in self.blocks.values())

    def leaky(self) -> list[str]:
        """Return the names of the blocks that leaked, in registration order."""
        return [name for name, b in self.blocks.items() if not b.ok]


class LookaheadCheck:
    """A registry of block functions and the check that runs them (see the module docstring)."""

    def __init__(self, *, atol: float = 1e-6) -> None:
        self.atol = atol
        self._fns: dict[str, BlockFn] = {}

    def register(self, name: str, fn: BlockFn) -> None:
        """Add a group of blocks (its function returns a dict of named block values)."""
        if name in self._fns:
            raise ValueError(f"look-ahead check: {name!r} is already registered")
        self._fns[name] = fn

    def _compute(self, frames: MarketFrames, t_B: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[np.floating]]:
        out: dict[str, npt.NDArray[np.floating]] = {}
        for group, fn in self._fns.items():
            for block, values in fn(frames, t_B).items():
                out[f"{group}/{block}" if block != group else block] = np.asarray(values)
        return out

    def run(
        self,
        raw: MarketFrames,
        times_us: npt.ArrayLike,
        *,
        rng: np.random.Generator,
        perturb: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> LookaheadReport:
        """Check every registered block at each of ``times_us`` (see the module docstring)."""
        t_all = np.asarray(times_us, dtype=np.int64).reshape(-1)
        end_us = _end_of(raw)
        full = self._compute(derive_frames(raw, end_us), t_all)
        report = LookaheadReport([int(t) for t in t_all], {name: BlockResult() for name in full})
        for i, t in enumerate(t_all):
            t_1 = np.array([t], dtype=np.int64)
            variants = [derive_frames(raw.until(int(t)), min(int(t), end_us))]
            if perturb:
                variants.append(derive_frames(perturb_after(raw, int(t), rng), end_us))
            for frames in variants:
                got = self._compute(frames, t_1)
                for name, ref in full.items():
                    res = report.blocks[name]
                    res.checked += 1
                    diff = _max_diff(got[name], ref[i : i + 1]) if name in got else np.inf
                    if diff > self.atol:
                        res.differing += 1
                        res.first_bad_t_us = int(t) if res.first_bad_t_us is None else res.first_bad_t_us
                    res.max_abs_diff = max(res.max_abs_diff, diff)
            if progress is not None:
                progress(i + 1, len(t_all))
        return report


def _max_diff(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))


def _end_of(raw: MarketFrames) -> int:
    """Find where the data ends.

    That is the close of the last trade's second (1s bars are made up to there), or, without trades, the
    close of the last stored bar.
    """
    ends = [(int(df.item(-1, "ts_us")) // 1_000_000 + 1) * 1_000_000 for df in raw.trades.values() if df.height]
    if ends:
        return max(ends)
    return max(
        int(df.item(-1, "open_us")) + tf.us for by_tf in raw.bars.values() for tf, df in by_tf.items() if df.height
    )


def sample_times(raw: MarketFrames, n: int, rng: np.random.Generator, *, role: str = "eth") -> npt.NDArray[np.int64]:
    """``n`` random check times: in the tick period when there are trades, else over the 1m history."""
    span = raw.tick_span_us(role)
    if span is None:
        lo, hi = raw.span_us(role, Timeframe.M1)
    else:
        lo, hi = span
    return np.sort(rng.integers(lo, hi, size=n, dtype=np.int64))
