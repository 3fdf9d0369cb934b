"""Compact per-timeframe feature arrays of a market: what both state builders read from.

:func:`build_market_features` runs every kernel once over a whole market (:class:`MarketFrames`):

* per role and timeframe of the layout: the bars as :class:`BarArrays` and their per-bar channels
  (:mod:`rltrade.features.bar_channels`);
* the traded symbol's trades, prepared for the ticks block (:mod:`rltrade.features.ticks`);
* Williams pivots on the traded symbol's ``pivot_timeframe`` bars (:mod:`rltrade.features.pivots`);
* regime features on the traded symbol's 1m bars with the reference's 1m close
  (:mod:`rltrade.features.regime`);
* optionally, the per-timeframe CNN rows (:class:`~rltrade.features.cnn_blocks.CnnBlocks`), computed by
  the CNN bridge in :mod:`rltrade.models` and handed in (this layer never runs a model).

Memory is a few float arrays per bar, never a ``T × 15,588`` state matrix: states are gathered on
demand by :class:`~rltrade.features.state_batch.BatchStateBuilder`.

Fitted statistics: the only one is the ticks block's trade-size scale, fitted on a training range
(:func:`fit_feature_stats`) and recorded with that range. It is causal: inside the range a state at
``t`` uses an expanding median of the trades before ``t`` only (:func:`~rltrade.features.ticks.fit_qty_scale`),
after it the whole range's median.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from rltrade.config import FeaturesConfig
from rltrade.data.align import BarArrays
from rltrade.data.market import MarketFrames
from rltrade.data.splits import TimeRange
from rltrade.features.bar_channels import BarChannels, BarChannelSpec, compute_bar_channels
from rltrade.features.cnn_blocks import CnnBlocks
from rltrade.features.layout import StateLayout
from rltrade.features.pivots import PivotSet, compute_pivots
from rltrade.features.regime import RegimeFeatures, RegimeSpec, compute_regime_features
from rltrade.features.ticks import QtyScale, TickSpec, TradeSeries, fit_qty_scale, prepare_trades
from rltrade.types import Timeframe


@dataclass(frozen=True)
class FeatureStats:
    """Statistics fitted on data, each with the time range it was fitted on."""

    qty_scale: float = 1.0
    """Median trade size of the traded symbol (ticks block normaliser)."""
    qty_scale_fitted_on: TimeRange | None = None
    qty_scale_steps: tuple[tuple[int, float], ...] = ()
    """The causal expanding fit inside ``qty_scale_fitted_on`` (:attr:`~rltrade.features.ticks.QtyScale.steps`);
    empty: ``qty_scale`` at every time (unfitted, or a bundle written before the fit was causal)."""

    def to_dict(self) -> dict[str, object]:
        """Return the statistics as a JSON-ready dict (the bundle's ``feature_stats``)."""
        return {
            "qty_scale": self.qty_scale,
            "qty_scale_fitted_on": None if self.qty_scale_fitted_on is None else self.qty_scale_fitted_on.to_dict(),
            "qty_scale_steps": [[s, v] for s, v in self.qty_scale_steps],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, object]) -> FeatureStats:
        """Rebuild the statistics from :meth:`to_dict`'s output."""
        fitted = raw.get("qty_scale_fitted_on")
        rng = TimeRange(**fitted) if isinstance(fitted, dict) else None
        steps = raw.get("qty_scale_steps") or []
        if not isinstance(steps, list):
            raise ValueError(f"feature stats: qty_scale_steps must be a list of [µs, value] pairs, got {steps!r}")
        return cls(float(raw["qty_scale"]), rng, tuple((int(s), float(v)) for s, v in steps))  # type: ignore[arg-type]

    def fitted_ranges(self) -> list[TimeRange]:
        """Return the time ranges the statistics were fitted on (none when unfitted)."""
        return [r for r in (self.qty_scale_fitted_on,) if r is not None]


def fit_feature_stats(frames: MarketFrames, fit_range: TimeRange) -> FeatureStats:
    """Fit the feature statistics on ``fit_range`` only (a training range)."""
    trades = frames.trades.get("eth")
    if trades is None or trades.height == 0:
        return FeatureStats()
    inside = trades.filter((pl.col("ts_us") >= fit_range.start_us) & (pl.col("ts_us") < fit_range.end_us))
    if inside.height == 0:
        return FeatureStats()
    scale: QtyScale = fit_qty_scale(inside["ts_us"].to_numpy(), inside["qty"].to_numpy(), fit_range)
    return FeatureStats(scale.value, scale.fitted_on, scale.steps)


@dataclass(frozen=True)
class FeatureSpec:
    """Kernel parameters derived from the features config and the layout."""

    bar: BarChannelSpec
    tick: TickSpec
    regime: RegimeSpec
    pivot_n: int
    pivot_levels: int
    pivot_tf: Timeframe
    stale_after_us: int

    @classmethod
    def from_config(cls, cfg: FeaturesConfig, layout: StateLayout, stats: FeatureStats) -> FeatureSpec:
        """Build the spec of every feature family from the features config, the layout and the fitted statistics."""
        max_ticks = layout.block("eth_ticks").shape[0] if layout.has("eth_ticks") else 1
        return cls(
            bar=BarChannelSpec(
                volume_window=cfg.volume_median_window,
                rsi_period=cfg.rsi_period,
                macd_fast=cfg.macd_fast,
                macd_slow=cfg.macd_slow,
                macd_signal=cfg.macd_signal,
                atr_period=cfg.atr_period,
            ),
            tick=TickSpec(
                window_us=layout.tick_window_s * 1_000_000,
                max_trades=max_ticks,
                qty_scale=stats.qty_scale,
                qty_scale_steps=stats.qty_scale_steps,
            ),
            regime=RegimeSpec(),
            pivot_n=cfg.pivot_n,
            pivot_levels=cfg.pivot_levels,
            pivot_tf=cfg.pivot_timeframe,
            stale_after_us=int(cfg.stale_after_s * 1_000_000),
        )


@dataclass(frozen=True, eq=False)
class SeriesFeatures:
    """One role's bars at one timeframe and their per-bar channels."""

    bars: BarArrays
    channels: BarChannels


@dataclass(frozen=True, eq=False)
class MarketFeatures:
    """Everything the state builders gather from (see the module docstring)."""

    spec: FeatureSpec
    series: Mapping[tuple[str, Timeframe], SeriesFeatures]
    trades: TradeSeries | None
    """The traded symbol's trades, for the ticks block."""
    trade_ts_us: Mapping[str, np.ndarray]
    """Trade times per role, for the stale-feed flag."""
    pivots: PivotSet | None
    pivot_bars: BarArrays | None
    regime: RegimeFeatures | None
    regime_bars: BarArrays | None
    """The traded symbol's 1m bars the regime rows belong to."""
    extras: Mapping[str, object] = field(default_factory=dict)
    cnn: CnnBlocks | None = None
    """Walk-forward CNN rows per timeframe for the cnn blocks; None leaves them zero and flagged off."""


def required_series(layout: StateLayout) -> set[tuple[str, Timeframe]]:
    """(role, timeframe) pairs the layout's bar and return blocks read."""
    need = {(b.symbol, b.timeframe) for b in layout.blocks if b.symbol is not None and b.timeframe is not None}
    return {(str(role), tf) for role, tf in need}


def build_market_features(
    frames: MarketFrames,
    layout: StateLayout,
    cfg: FeaturesConfig,
    stats: FeatureStats = FeatureStats(),
    *,
    cnn: CnnBlocks | None = None,
) -> MarketFeatures:
    """Run every kernel the layout needs once over ``frames``; ``cnn`` carries precomputed CNN rows."""
    spec = FeatureSpec.from_config(cfg, layout, stats)
    series: dict[tuple[str, Timeframe], SeriesFeatures] = {}
    for role, tf in sorted(required_series(layout), key=lambda k: (k[0], k[1].us)):
        df = frames.bars.get(role, {}).get(tf)
        if df is None:
            raise KeyError(
                f"layout {layout.name!r} needs {tf.value} bars of {frames.symbols[role]} but the market has none; "
                f"held: {sorted(t.value for t in frames.bars.get(role, {}))}"
            )
        bars = BarArrays.from_frame(df, tf)
        channels = compute_bar_channels(
            bars.open_T,
            bars.high_T,
            bars.low_T,
            bars.close_T,
            bars.volume_T,
            spec.bar,
            what=f"{frames.symbols[role]} {tf.value}",
        )
        series[(role, tf)] = SeriesFeatures(bars, channels)
    trades = None
    eth_trades = frames.trades.get("eth")
    if layout.has("eth_ticks") and eth_trades is not None and eth_trades.height:
        trades = prepare_trades(
            eth_trades["ts_us"].to_numpy(),
            eth_trades["price"].to_numpy(),
            eth_trades["qty"].to_numpy(),
            eth_trades["side"].to_numpy(),
            spec.tick,
            what=f"{frames.symbols['eth']} trades",
        )
    trade_ts = {role: df["ts_us"].to_numpy() for role, df in frames.trades.items()}
    pivots = pivot_bars = None
    if layout.has("pivots"):
        pivot_bars = BarArrays.from_frame(frames.bars["eth"][spec.pivot_tf], spec.pivot_tf)
        pivots = compute_pivots(
            pivot_bars.high_T,
            pivot_bars.low_T,
            pivot_bars.open_us_T,
            spec.pivot_tf.us,
            n=spec.pivot_n,
            levels=spec.pivot_levels,
        )
    regime = regime_bars = None
    if layout.has("regime"):
        regime_bars, ref_close = regime_inputs(frames)
        regime = compute_regime_features(
            regime_bars.high_T,
            regime_bars.low_T,
            regime_bars.close_T,
            regime_bars.volume_T,
            ref_close,
            spec.regime,
            what=f"{frames.symbols['eth']} 1m regime",
        )
    return MarketFeatures(
        spec, series, trades, trade_ts, pivots, pivot_bars, regime, regime_bars, frames.extras, cnn=cnn
    )


def regime_inputs(frames: MarketFrames) -> tuple[BarArrays, np.ndarray]:
    """Join the traded symbol's 1m bars and the reference's 1m close on the same grid.

    A minute the reference lacks takes the reference's last earlier close (carried, causal); minutes
    before the reference's first bar take its first close (only affects the warm-up, which is masked).
    """
    eth = frames.bars["eth"][Timeframe.M1]
    btc = frames.bars["btc"][Timeframe.M1].select("open_us", pl.col("close").alias("ref_close"))
    joined = eth.join(btc, on="open_us", how="left").with_columns(pl.col("ref_close").forward_fill().backward_fill())
    return BarArrays.from_frame(eth, Timeframe.M1), joined["ref_close"].to_numpy()
