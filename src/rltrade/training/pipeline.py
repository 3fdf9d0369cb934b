"""Everything a run builds before the agent: data → splits → fitted statistics → CNNs → features → periods.

:func:`prepare` is the one place a run reads its inputs: the market frames (``data.store`` or the synthetic
generator) and, when ``env.funding_file`` is set, the funding table, read once and reused by every period
built from the result (:meth:`Prepared.period`). Nothing here writes a run folder
(:mod:`rltrade.training.bundle` does) or touches the agent (:mod:`rltrade.training.loop`).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polars as pl

from rltrade.agent.encoder import BlockSpec
from rltrade.config import Config
from rltrade.data.market import MarketFrames, load_market
from rltrade.data.splits import Fold, TimeRange, split_span
from rltrade.env.prices import PeriodData, build_period, load_funding
from rltrade.features.history import history_shortfalls
from rltrade.features.layout import StateLayout, build_layout
from rltrade.features.market_features import FeatureSpec, FeatureStats, build_market_features, fit_feature_stats
from rltrade.features.state_batch import BatchStateBuilder
from rltrade.training.cnn_stage import CnnStageResult, run_cnn_stage
from rltrade.training.selection import selection_ranges
from rltrade.types import Timeframe, ceil_to_grid

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Prepared:
    """Everything a run builds before the agent: data, splits, features, periods."""

    cfg: Config
    frames: MarketFrames
    layout: StateLayout
    splits: Fold
    stats: FeatureStats
    builder: BatchStateBuilder
    funding: pl.DataFrame | None
    """The ``env.funding_file`` table, read once by :func:`prepare` (None: the constant borrow rate)."""
    train_period: PeriodData
    validation_period: PeriodData | None
    test_period: PeriodData
    cnn: CnnStageResult | None = None
    """The walk-forward CNNs behind the state's CNN blocks (None: no CNN stage, the blocks stay off)."""

    def period(self, r: TimeRange) -> PeriodData:
        """Build the per-step env arrays of ``r`` on this run's features, clock, costs and funding."""
        return build_period(self.builder.features, r, self.cfg.env, self.cfg.reward, funding=self.funding)

    def validation_slice(self) -> PeriodData | None:
        """Return what the loop's validation backtests (and the checkpoint choice) see.

        That is the selection window of the validation range (all but its last ``selection.confirm_fraction``,
        :mod:`rltrade.training.selection`), its first ``train.eval_max_steps`` steps (backtests stay cheap).
        """
        if self.splits.validation is None:
            return None
        window, _ = self.selection_windows(self.splits.validation)
        end = min(window.end_us, window.start_us + self.cfg.train.eval_max_steps * self.cfg.env.step.us)
        return self.period(TimeRange(window.start_us, end))

    def confirmation_range(self) -> TimeRange | None:
        """Return the validation range's last ``selection.confirm_fraction``: read once, to confirm the choice."""
        return None if self.splits.validation is None else self.selection_windows(self.splits.validation)[1]

    def selection_windows(self, validation: TimeRange) -> tuple[TimeRange, TimeRange]:
        """Return ``(selection window, confirmation window)`` of ``validation`` on this run's clock."""
        return selection_ranges(validation, self.cfg.selection.confirm_fraction, self.cfg.env.step.us)

    def fitted_ranges(self) -> list[TimeRange]:
        """Every range something was fitted on: training, validation (checkpoint choice) and the CNNs' fits."""
        fitted = [self.splits.train] + ([self.splits.validation] if self.splits.validation is not None else [])
        return fitted + (self.cnn.fitted_ranges() if self.cnn is not None else [])


def decision_span(frames: MarketFrames, cfg: Config) -> TimeRange:
    """Return the time span the decision clock can run on.

    That is the tick period on a clock finer than a minute, else the 1m bars (the clock's own bars when the
    market has no 1m bars: the 1h clock of the real-1h preset) from the first one's close (the first decision
    needs a closed bar to mark the account at).
    """
    step = cfg.env.step.us
    tick = frames.tick_span_us("eth") if step < Timeframe.M1.us else None
    if tick is not None:
        lo, hi = tick
    else:
        tf = _span_timeframe(frames, cfg.env.step)
        first_open, hi = frames.span_us("eth", tf)
        lo = first_open + tf.us
    return TimeRange(ceil_to_grid(lo, step), hi // step * step)


def _span_timeframe(frames: MarketFrames, step: Timeframe) -> Timeframe:
    """Return the bars the decision span is read from: 1m when the market has them, else the clock's own."""
    have = frames.bars.get("eth", {})
    if Timeframe.M1 in have or step not in have:
        return Timeframe.M1
    return step


def prepare(
    cfg: Config,
    *,
    frames: MarketFrames | None = None,
    stats: FeatureStats | None = None,
    splits: Fold | None = None,
    cnn_dir: Path | None = None,
) -> Prepared:
    """Prepare a run: data → splits → fitted statistics (training range only) → CNNs → features → per-period env arrays.

    ``splits`` gives the ranges explicitly (a walk-forward fold); by default they are the config's
    fractions of the decision span. The CNNs (walk-forward, nothing learnt from the test range:
    :mod:`rltrade.training.cnn_stage`) are loaded from ``cnn_dir`` when it holds a run's saved set, else
    fitted now.
    """
    frames = frames if frames is not None else load_market(cfg.data)
    if splits is None:
        splits = split_span(decision_span(frames, cfg), cfg.splits, step_us=cfg.env.step.us)
    stats = stats if stats is not None else fit_feature_stats(frames, splits.train)
    layout = build_layout(cfg.features.layout)
    warn_short_history(frames, layout, cfg, splits.train.start_us)
    cnn = run_cnn_stage(frames, layout, cfg, splits, models_dir=cnn_dir)
    features = build_market_features(frames, layout, cfg.features, stats, cnn=None if cnn is None else cnn.blocks)
    builder = BatchStateBuilder(layout, features)
    funding = load_funding(cfg.env)

    def period(r: TimeRange) -> PeriodData:
        return build_period(features, r, cfg.env, cfg.reward, funding=funding)

    val = period(splits.validation) if splits.validation is not None else None
    return Prepared(
        cfg, frames, layout, splits, stats, builder, funding, period(splits.train), val, period(splits.test), cnn
    )


SHORTFALL: Final = "history_shortfall"
"""Attribute set on the log records of :func:`warn_short_history` (a sweep warns once and filters its runs')."""


def warn_short_history(frames: MarketFrames, layout: StateLayout, cfg: Config, start_us: int) -> None:
    """Warn, before anything is fitted, about bar blocks with fewer than window + warm-up bars by ``start_us``.

    Each record carries ``history_shortfall=True`` (:data:`SHORTFALL`), so a caller that has already warned
    (a sweep, once for all its runs) can filter the repeats.
    """
    spec = FeatureSpec.from_config(cfg.features, layout, FeatureStats()).bar
    for short in history_shortfalls(frames, layout, spec, start_us):
        until = (
            "for the whole run (the data never holds that many)"
            if short.complete_from_us is None
            else f"until {_utc(short.complete_from_us)}"
        )
        logger.warning(
            "%s: %d %s bars before the train start %s; its window and indicator warm-up need %d (%d missing), "
            "so the block stays partly masked %s. Import earlier %s history (rltrade data download / import) "
            "or start later (--from / data.start).",
            short.block,
            short.have,
            short.timeframe.value,
            _utc(start_us),
            short.need,
            short.missing,
            until,
            short.timeframe.value,
            extra={SHORTFALL: True},
        )


def _utc(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def block_specs(layout: StateLayout) -> tuple[BlockSpec, ...]:
    """Return the layout's blocks as the structured encoder reads them (flags pass through as a flat block)."""
    return tuple(
        BlockSpec(b.name, b.shape, b.start, b.stop, "flat" if b.kind == "flags" else b.kind) for b in layout.blocks
    )
