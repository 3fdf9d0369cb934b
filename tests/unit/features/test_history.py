"""history_shortfalls: which bar blocks lack window + warm-up bars before the train start, and until when."""

from __future__ import annotations

import numpy as np
import polars as pl

from rltrade.config import LayoutConfig
from rltrade.data.market import MarketFrames
from rltrade.data.schema import BAR_SCHEMA, conform
from rltrade.features.bar_channels import BarChannelSpec
from rltrade.features.history import history_shortfalls
from rltrade.features.layout import build_layout
from rltrade.types import Timeframe

T0 = 1_722_470_400_000_000  # 2024-08-01 00:00 UTC


def bars(tf: Timeframe, first_us: int, n: int) -> pl.DataFrame:
    close = np.full(n, 100.0)
    frame = pl.DataFrame(
        {"open_us": first_us + np.arange(n, dtype=np.int64) * tf.us, "open": close, "high": close, "low": close}
    ).with_columns(close=pl.col("open"), volume=pl.lit(1.0))
    return conform(frame, BAR_SCHEMA, what="test")


def test_blocks_short_of_window_plus_warmup_are_named_with_when_they_complete() -> None:
    layout = build_layout(LayoutConfig(name="demo", ticks=False, cnn=False, returns=False))
    spec = BarChannelSpec()
    window = layout.block("eth_1d").shape[0]
    need = window + spec.warmup_bars
    start = T0 + 400 * Timeframe.D1.us
    by_tf = {
        Timeframe.S1: bars(Timeframe.S1, start - 10_000 * Timeframe.S1.us, 20_000),  # plenty before the start
        Timeframe.M1: bars(Timeframe.M1, start - 5_000 * Timeframe.M1.us, 6_000),
        Timeframe.H1: bars(Timeframe.H1, start - 2_000 * Timeframe.H1.us, 2_100),
        Timeframe.D1: bars(Timeframe.D1, start - 30 * Timeframe.D1.us, 200),  # 30 days before: short
    }
    market = MarketFrames({"eth": "ETHUSDT", "btc": "BTCUSDT"}, {}, {"eth": by_tf, "btc": by_tf})
    (short,) = [s for s in history_shortfalls(market, layout, spec, start) if s.block == "eth_1d"]
    assert (short.have, short.need, short.missing) == (30, need, need - 30)
    # The need-th 1d bar opens (need - 30 - 1) days after the start and closes a day later.
    assert short.complete_from_us == start + (need - 30) * Timeframe.D1.us
    assert all(s.timeframe is Timeframe.D1 for s in history_shortfalls(market, layout, spec, start))
    # Enough history: nothing to say.
    assert history_shortfalls(market, layout, spec, start + 400 * Timeframe.D1.us) == []


def test_a_block_that_never_completes_has_no_completion_time() -> None:
    layout = build_layout(LayoutConfig(name="demo", ticks=False, cnn=False, returns=False))
    few = {tf: bars(tf, T0, 10) for tf in Timeframe}
    market = MarketFrames({"eth": "ETHUSDT", "btc": "BTCUSDT"}, {}, {"eth": few, "btc": few})
    shortfalls = history_shortfalls(market, layout, BarChannelSpec(), T0 + 5 * Timeframe.D1.us)
    assert shortfalls and all(s.complete_from_us is None for s in shortfalls)
