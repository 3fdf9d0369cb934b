"""Causality of resampling and as-of access: whatever happens at or after t never changes what is known at t.

* trades → bars: perturbing, moving or deleting any trade with ``ts_us >= t`` leaves every bar that
  closed at or before t bit-identical;
* bars → coarser bars: perturbing or deleting source bars that close after t leaves every coarse bar
  closed by t identical;
* ``last_closed_index`` never returns a bar whose close is after t, and never skips a closed one;
* perturbing or deleting bars that close after t leaves ``asof`` and ``partial_bar`` at every time
  <= t unchanged.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from rltrade.data.align import AlignedMarket, BarArrays, last_closed_index, partial_bar
from rltrade.data.resample import resample_bars, trades_to_bars
from rltrade.data.schema import TRADE_SCHEMA
from rltrade.types import US_PER_MINUTE, US_PER_SECOND, Timeframe

T0 = 1_723_161_600_000_000  # 2024-08-09 00:00:00 UTC
CAUSAL = settings(max_examples=60, deadline=None, derandomize=True)
SPAN_MS = 4 * 60_000  # four minutes of trades


@st.composite
def trades_and_cut(draw: st.DrawFn) -> tuple[pl.DataFrame, int]:
    """Trades on a ms grid, often exactly on second boundaries, with ties; and a cut t in µs.

    t is often exactly a trade's time or a bar boundary, where an off-by-one would show.
    """
    n = draw(st.integers(1, 60))
    any_ms = st.integers(0, SPAN_MS)
    on_second = st.integers(0, SPAN_MS // 1000).map(lambda s: s * 1000)
    ms = sorted(draw(st.lists(st.one_of(any_ms, on_second), min_size=n, max_size=n)))
    prices = draw(st.lists(st.sampled_from([99.5, 100.0, 100.25, 101.0, 102.5]), min_size=n, max_size=n))
    qtys = draw(st.lists(st.sampled_from([0.001, 0.5, 1.0, 3.0]), min_size=n, max_size=n))
    sides = draw(st.lists(st.sampled_from([1, -1]), min_size=n, max_size=n))
    cut_ms = draw(st.one_of(st.sampled_from(ms), on_second, st.integers(0, SPAN_MS + 2000)))
    trades = pl.DataFrame(
        {
            "ts_us": [T0 + m * 1000 for m in ms],
            "trade_id": list(range(n)),
            "price": prices,
            "qty": qtys,
            "side": sides,
            "is_agg": [False] * n,
        },
        schema=TRADE_SCHEMA,
    )
    return trades, T0 + cut_ms * 1000


def perturb_from(trades: pl.DataFrame, t_us: int, seed: int) -> pl.DataFrame:
    """Change price, size and side of every trade at or after t, move some later, delete some, add some."""
    rng = np.random.default_rng(seed)
    past = trades.filter(pl.col("ts_us") < t_us)
    future = trades.filter(pl.col("ts_us") >= t_us)
    k = future.height
    future = future.with_columns(
        pl.Series("price", rng.uniform(50, 150, k)),
        pl.Series("qty", rng.uniform(0.01, 9, k)),
        pl.Series("side", rng.choice([1, -1], k).astype(np.int8)),
        pl.Series("ts_us", future["ts_us"].to_numpy() + rng.integers(0, 3, k) * rng.integers(0, 90_000_000, k)),
    ).filter(pl.Series(rng.random(k) < 0.7))
    extra = pl.DataFrame(
        {
            "ts_us": t_us + rng.integers(0, 60_000_000, 3),
            "trade_id": [10_000, 10_001, 10_002],
            "price": rng.uniform(50, 150, 3),
            "qty": [1.0, 2.0, 3.0],
            "side": [1, -1, 1],
            "is_agg": [False] * 3,
        },
        schema=TRADE_SCHEMA,
    )
    return pl.concat([past, future, extra]).sort("ts_us", "trade_id")


@CAUSAL
@given(trades_t=trades_and_cut(), seed=st.integers(0, 2**32 - 1))
def test_trades_at_or_after_t_never_change_bars_closed_by_t(trades_t: tuple[pl.DataFrame, int], seed: int) -> None:
    trades, t_us = trades_t
    changed = perturb_from(trades, t_us, seed)
    start, end = T0, T0 + 6 * US_PER_MINUTE
    prev = 42.0  # a known close before the range, for ranges that start before the first trade
    for tf in (Timeframe.S1, Timeframe.M1):
        before = trades_to_bars(trades, tf, start_us=start, end_us=end, prev_close=prev)
        after = trades_to_bars(changed, tf, start_us=start, end_us=end, prev_close=prev)
        closed = pl.col("open_us") + tf.us <= t_us
        assert before.filter(closed).equals(after.filter(closed))


@CAUSAL
@given(trades_t=trades_and_cut(), seed=st.integers(0, 2**32 - 1))
def test_resampled_bars_closed_by_t_ignore_later_source_bars(trades_t: tuple[pl.DataFrame, int], seed: int) -> None:
    trades, t_us = trades_t
    seconds = trades_to_bars(trades, Timeframe.S1, start_us=T0, end_us=T0 + 5 * US_PER_MINUTE, prev_close=42.0)
    rng = np.random.default_rng(seed)
    later = pl.col("open_us") + US_PER_SECOND > t_us
    changed = seconds.with_columns(
        pl.when(later).then(pl.col(c) * pl.lit(rng.uniform(0.5, 2.0))).otherwise(pl.col(c)).alias(c)
        for c in ("open", "high", "low", "close", "volume")
    ).filter(~later | pl.Series(rng.random(seconds.height) < 0.8))
    for complete_only in (True, False):
        a = resample_bars(seconds, Timeframe.S1, Timeframe.M1, complete_only=complete_only)
        b = resample_bars(changed, Timeframe.S1, Timeframe.M1, complete_only=complete_only)
        closed = pl.col("open_us") + US_PER_MINUTE <= t_us
        assert a.filter(closed).equals(b.filter(closed))


@st.composite
def bar_opens(draw: st.DrawFn) -> tuple[Timeframe, np.ndarray]:
    """Sorted, unique opens on a timeframe's grid, with gaps (outages)."""
    tf = draw(st.sampled_from([Timeframe.S1, Timeframe.M1, Timeframe.H1]))
    slots = draw(st.lists(st.integers(0, 200), min_size=1, max_size=80, unique=True))
    return tf, np.array(sorted(slots), dtype=np.int64) * tf.us + T0 // tf.us * tf.us


def frame_of(tf: Timeframe, opens: np.ndarray, rng: np.random.Generator) -> pl.DataFrame:
    c = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, len(opens))))
    return pl.DataFrame(
        {
            "open_us": opens,
            "open": c,
            "high": c * 1.001,
            "low": c * 0.999,
            "close": c,
            "volume": rng.uniform(0, 5, len(opens)),
            "is_filled": rng.random(len(opens)) < 0.2,
        }
    )


@CAUSAL
@given(
    tf_opens=bar_opens(),
    picks=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from([-1, 0, 1])), min_size=1, max_size=30),
    offsets=st.lists(st.integers(-5, 210), max_size=10),
)
def test_last_closed_index_is_the_latest_bar_closed_by_t(
    tf_opens: tuple[Timeframe, np.ndarray], picks: list[tuple[int, int]], offsets: list[int]
) -> None:
    tf, opens = tf_opens
    bars = BarArrays.from_frame(frame_of(tf, opens, np.random.default_rng(0)), tf)
    closes = opens + tf.us
    # exactly at, 1 µs before and 1 µs after bar closes, and anywhere else
    at_closes = [int(closes[i % len(closes)]) + j for i, j in picks]
    t = np.array(at_closes + [int(opens[0]) + k * tf.us for k in offsets], dtype=np.int64)
    idx = last_closed_index(bars, t)
    got = idx >= 0
    assert np.all(closes[idx[got]] <= t[got])  # never a bar that closes after t
    nxt = idx + 1
    has_next = nxt < len(closes)
    assert np.all(closes[nxt[has_next]] > t[has_next])  # never skips a bar that closed
    assert np.all(closes[0] > t[~got])


@CAUSAL
@given(tf_opens=bar_opens(), cut=st.integers(0, 210), seed=st.integers(0, 2**32 - 1))
def test_asof_up_to_t_ignores_bars_after_t(tf_opens: tuple[Timeframe, np.ndarray], cut: int, seed: int) -> None:
    tf, opens = tf_opens
    rng = np.random.default_rng(seed)
    frame = frame_of(tf, opens, rng)
    t_us = int(opens[0]) + cut * tf.us
    later = pl.col("open_us") + tf.us > t_us
    noise = rng.uniform(0.5, 2.0)
    changed = frame.with_columns(
        pl.when(later).then(pl.col(c) * noise).otherwise(pl.col(c)).alias(c) for c in ("open", "close", "volume")
    ).filter(~later | pl.Series(rng.random(frame.height) < 0.5))
    market_a = AlignedMarket.from_frames({"X": {tf: frame}})
    market_b = AlignedMarket.from_frames({"X": {tf: changed}})
    ts = np.linspace(int(opens[0]) - tf.us, t_us, 40).astype(np.int64)
    ia, ib = market_a.asof("X", tf, ts), market_b.asof("X", tf, ts)
    np.testing.assert_array_equal(ia, ib)
    a, b = market_a.bars("X", tf), market_b.bars("X", tf)
    ok = ia >= 0
    for name in ("open_us_T", "open_T", "high_T", "low_T", "close_T", "volume_T", "is_filled_T"):
        np.testing.assert_array_equal(getattr(a, name)[ia[ok]], getattr(b, name)[ib[ok]])


@CAUSAL
@given(
    slots=st.lists(st.integers(0, 400), min_size=1, max_size=150, unique=True),
    cut=st.integers(0, 420),
    seed=st.integers(0, 2**32 - 1),
)
def test_partial_bar_at_t_ignores_fine_bars_after_t(slots: list[int], cut: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    opens = T0 + np.array(sorted(slots), dtype=np.int64) * US_PER_SECOND
    frame = frame_of(Timeframe.S1, opens, rng)
    t_us = T0 + cut * US_PER_SECOND + int(rng.integers(-1, 2))
    later = pl.col("open_us") + US_PER_SECOND > t_us
    changed = frame.with_columns(
        pl.when(later).then(pl.col(c) * 3.0).otherwise(pl.col(c)).alias(c)
        for c in ("open", "high", "low", "close", "volume")
    ).filter(~later | pl.Series(rng.random(frame.height) < 0.5))
    ts = np.r_[np.linspace(T0 - US_PER_SECOND, t_us, 25).astype(np.int64), t_us]
    a = partial_bar(BarArrays.from_frame(frame, Timeframe.S1), Timeframe.M1, ts)
    b = partial_bar(BarArrays.from_frame(changed, Timeframe.S1), Timeframe.M1, ts)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
