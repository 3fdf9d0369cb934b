"""Is there enough bar history before a time for each bar block to be complete? Said before training.

A bar block at time ``t`` holds the last ``window`` bars closed by ``t`` (``open_us + tf <= t``); a row is
masked while its bar is inside the indicator warm-up (:attr:`BarChannelSpec.warmup_bars`, counted from the
first stored bar). So a block is complete from the moment ``window + warmup_bars`` bars have closed. When
the store holds fewer before the train start (1d bars imported from a month before it, say), the block is
partly masked for a stretch of the run, silently; :func:`history_shortfalls` finds each such block, and the
CLI says how many bars are missing and until when the block stays masked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rltrade.data.market import MarketFrames
from rltrade.features.bar_channels import BarChannelSpec
from rltrade.features.layout import StateLayout
from rltrade.types import Timeframe


@dataclass(frozen=True)
class HistoryShortfall:
    """A bar block without ``need`` bars closed by the start time."""

    block: str
    timeframe: Timeframe
    have: int
    """Bars closed by the start time."""
    need: int
    """The window plus the indicator warm-up."""
    complete_from_us: int | None
    """When the ``need``-th bar closes (the block is complete from then on); None: never, in this data."""

    @property
    def missing(self) -> int:
        """Bars short at the start time."""
        return self.need - self.have


def history_shortfalls(
    market: MarketFrames, layout: StateLayout, spec: BarChannelSpec, start_us: int
) -> list[HistoryShortfall]:
    """Return the bar blocks of ``layout`` that have fewer than window + warm-up bars closed by ``start_us``.

    Parameters
    ----------
    market : MarketFrames
        The loaded market (its bars per role and timeframe).
    layout : StateLayout
        The state layout; its ``bars`` blocks are checked.
    spec : BarChannelSpec
        The indicator parameters (their warm-up).
    start_us : int
        The first decision time that should see complete blocks (the train range's start).
    """
    out: list[HistoryShortfall] = []
    for block in layout.blocks:
        if block.kind != "bars" or block.symbol is None or block.timeframe is None:
            continue
        tf = block.timeframe
        need = block.shape[0] + spec.warmup_bars
        bars = market.bars.get(block.symbol, {}).get(tf)
        closes = np.empty(0, np.int64) if bars is None else bars["open_us"].to_numpy() + tf.us
        have = int(np.searchsorted(closes, start_us, side="right"))
        if have >= need:
            continue
        complete = int(closes[need - 1]) if len(closes) >= need else None
        out.append(HistoryShortfall(block.name, tf, have, need, complete))
    return out
