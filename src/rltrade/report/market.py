"""The price panel's data: candles of the evaluation period, their Williams pivots, and the regimes.

* **Candles**: the traded symbol's finest stored bars that cover the period, aggregated to the smallest
  round bar size keeping at most ``max_candles`` candles (:func:`rltrade.report.decimate.choose_bar_us`).
* **Pivots**: :func:`rltrade.features.pivots.compute_pivots` run on the displayed candles (the config's
  ``pivot_n`` and ``pivot_levels``), so every marker sits on a drawn candle. A pivot at candle ``i`` is
  only *known* once ``n`` later candles have closed; the chart shows where it is, not when it was known.
* **Regimes**: the classifier's label (:func:`rltrade.features.regime.classify_regimes`) of the last
  1m bar closed at each candle's open, i.e. what the agent could know when the candle began; and, on
  the synthetic market, the true regime of the minute holding the candle's open
  (``MarketFrames.extras["regimes"]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from rltrade.data.align import last_closed_index
from rltrade.data.market import MarketFrames
from rltrade.data.splits import TimeRange
from rltrade.features.market_features import MarketFeatures, regime_inputs
from rltrade.features.pivots import compute_pivots
from rltrade.features.regime import REGIME_UNKNOWN, classify_regimes, compute_regime_features
from rltrade.report.decimate import Ohlc, choose_bar_us, resample_ohlc
from rltrade.types import Timeframe

I8 = npt.NDArray[np.int8]


class ReportDataError(ValueError):
    """A run folder lacks what the report needs; the message says what and how to produce it."""


@dataclass(frozen=True, eq=False)
class PivotLevel:
    """The pivots of one level on the displayed candles (highs and lows together, in time order)."""

    level: int
    time_us_P: npt.NDArray[np.int64]
    price_P: npt.NDArray[np.float64]
    is_high_P: npt.NDArray[np.bool_]
    confirm_us_P: npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class PriceView:
    """Everything the price panel draws (module docstring)."""

    symbol: str
    source_tf: Timeframe
    bar_us: int
    candles: Ohlc
    pivots: tuple[PivotLevel, ...]
    regime_K: I8
    """Classified regime per candle (``Regime`` values, -1 unknown)."""
    true_regime_K: I8 | None
    """True regime per candle on the synthetic market, else None."""


def _source_bars(frames: MarketFrames, period: TimeRange) -> tuple[Timeframe, pl.DataFrame]:
    """Pick the finest of the traded symbol's bar series whose first bar opens by the period start."""
    for tf in sorted(frames.bars["eth"], key=lambda t: t.us):
        df = frames.bars["eth"][tf]
        if df.height and int(df.item(0, "open_us")) <= period.start_us:
            inside = df.filter((pl.col("open_us") >= period.start_us) & (pl.col("open_us") < period.end_us))
            if inside.height:
                return tf, inside
    raise ReportDataError(
        f"no bars of {frames.symbols['eth']} cover the evaluation period starting at {period.start_us} µs; "
        "the market data does not match the run (was the store changed since training?)"
    )


def _pivot_levels(candles: Ohlc, bar_us: int, n: int, levels: int) -> tuple[PivotLevel, ...]:
    pivots = compute_pivots(candles.high_K, candles.low_K, candles.open_us_K, bar_us, n=n, levels=levels)
    out = []
    for k in range(pivots.levels):
        hi, lo = pivots.highs[k], pivots.lows[k]
        order = np.argsort(np.concatenate([hi.time_us_P, lo.time_us_P]), kind="stable")
        out.append(
            PivotLevel(
                level=k,
                time_us_P=np.concatenate([hi.time_us_P, lo.time_us_P])[order],
                price_P=np.concatenate([hi.price_P, lo.price_P])[order],
                is_high_P=np.concatenate([np.ones(hi.time_us_P.size, bool), np.zeros(lo.time_us_P.size, bool)])[order],
                confirm_us_P=np.concatenate([hi.confirm_us_P, lo.confirm_us_P])[order],
            )
        )
    return tuple(out)


def classified_regimes(frames: MarketFrames, features: MarketFeatures, t_K: npt.NDArray[np.int64]) -> I8:
    """Return the classifier's label of the last 1m bar closed at each ``t_K`` (-1 before one has closed).

    Uses the features' regime rows when the layout has them, else computes them with the same spec.
    """
    if Timeframe.M1 not in frames.bars.get("eth", {}) or Timeframe.M1 not in frames.bars.get("btc", {}):
        return np.full(t_K.shape, REGIME_UNKNOWN, np.int8)
    if features.regime is not None and features.regime_bars is not None:
        values, bars = features.regime, features.regime_bars
    else:
        bars, ref_close = regime_inputs(frames)
        values = compute_regime_features(
            bars.high_T, bars.low_T, bars.close_T, bars.volume_T, ref_close, features.spec.regime
        )
    labels = classify_regimes(values.values_TF, values.valid_T)
    idx = last_closed_index(bars, t_K)
    return np.where(idx >= 0, labels[np.maximum(idx, 0)], REGIME_UNKNOWN).astype(np.int8)


def true_regimes(frames: MarketFrames, t_K: npt.NDArray[np.int64]) -> I8 | None:
    """Return the synthetic market's true regime of the minute holding each ``t_K``; None on other markets."""
    regimes = frames.extras.get("regimes")
    if not isinstance(regimes, Mapping) or Timeframe.M1 not in regimes:
        return None
    df = regimes[Timeframe.M1]
    if not isinstance(df, pl.DataFrame) or df.height == 0:
        return None
    opens = df["open_us"].to_numpy()
    idx = np.searchsorted(opens, t_K, side="right") - 1
    inside = (idx >= 0) & (t_K < opens[-1] + Timeframe.M1.us)
    labels = df["regime"].to_numpy()
    return np.where(inside, labels[np.maximum(idx, 0)], REGIME_UNKNOWN).astype(np.int8)


def price_view(
    frames: MarketFrames,
    features: MarketFeatures,
    period: TimeRange,
    *,
    max_candles: int,
    pivot_n: int,
    pivot_levels: int,
) -> PriceView:
    """Candles, pivots and regimes of ``period`` (module docstring)."""
    tf, bars = _source_bars(frames, period)
    bar_us = choose_bar_us(period.end_us - period.start_us, tf.us, max_candles)
    candles = resample_ohlc(
        bars["open_us"].to_numpy(),
        bars["open"].to_numpy(),
        bars["high"].to_numpy(),
        bars["low"].to_numpy(),
        bars["close"].to_numpy(),
        bar_us,
    )
    return PriceView(
        symbol=frames.symbols["eth"],
        source_tf=tf,
        bar_us=bar_us,
        candles=candles,
        pivots=_pivot_levels(candles, bar_us, pivot_n, pivot_levels),
        regime_K=classified_regimes(frames, features, candles.open_us_K),
        true_regime_K=true_regimes(frames, candles.open_us_K),
    )
