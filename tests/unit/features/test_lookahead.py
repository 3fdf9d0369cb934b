"""The look-ahead check: zero differences for every state block; every planted leak is flagged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import cache

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest

from rltrade.config import DataConfig, FeaturesConfig, LayoutConfig, SyntheticConfig
from rltrade.data.align import BarArrays, last_closed_index
from rltrade.data.market import MarketFrames, load_market
from rltrade.data.splits import TimeRange
from rltrade.features.layout import build_layout
from rltrade.features.lookahead import (
    LookaheadCheck,
    LookaheadReport,
    derive_frames,
    perturb_after,
    sample_times,
    state_blocks,
)
from rltrade.features.market_features import fit_feature_stats
from rltrade.features.pivots import compute_pivots
from rltrade.types import Timeframe
from tests.support.real_data import real_market


@cache
def market() -> MarketFrames:
    return load_market(DataConfig(synthetic=SyntheticConfig(seed=5, history_days=12, tick_days=0.03)))


def _m1(frames: MarketFrames) -> BarArrays:
    return BarArrays.from_frame(frames.bars["eth"][Timeframe.M1], Timeframe.M1)


def leak_next_close(frames: MarketFrames, t_B: npt.NDArray[np.int64]) -> Mapping[str, np.ndarray]:
    """Canary: the log return to the *next* 1m close (close shifted by −1)."""
    bars = _m1(frames)
    i = last_closed_index(bars, t_B)
    nxt = np.minimum(i + 1, len(bars) - 1)
    return {"next_close": np.log(bars.close_T[nxt] / bars.close_T[np.maximum(i, 0)])}


def leak_centred_mean(frames: MarketFrames, t_B: npt.NDArray[np.int64]) -> Mapping[str, np.ndarray]:
    """Canary: a centred 5-bar rolling mean of the 1m close, read at the last closed bar."""
    bars = _m1(frames)
    mean = pl.Series(bars.close_T).rolling_mean(5, center=True, min_samples=1).to_numpy()
    i = np.maximum(last_closed_index(bars, t_B), 0)
    return {"centred_mean": mean[i] / bars.close_T[i]}


def leak_pivot_at_own_bar(frames: MarketFrames, t_B: npt.NDArray[np.int64]) -> Mapping[str, np.ndarray]:
    """Canary: level-0 swing highs treated as visible at their own bar's close, not at confirmation."""
    bars = _m1(frames)
    piv = compute_pivots(bars.high_T, bars.low_T, bars.open_us_T, Timeframe.M1.us, n=2, levels=1).highs[0]
    own_close = piv.time_us_P + Timeframe.M1.us
    k = np.searchsorted(own_close, t_B, side="right") - 1
    return {"pivot_own_bar": np.where(k >= 0, piv.price_P[np.maximum(k, 0)], 0.0)}


def _check(
    frames: MarketFrames,
    name: str,
    n: int,
    *,
    canaries: bool,
    returns: bool = False,
    early: dict[str, int] | None = None,
    closes: int = 1,
    trades: int = 1,
) -> LookaheadReport:
    cfg = FeaturesConfig(layout=LayoutConfig(name=name, returns=returns))  # type: ignore[arg-type]
    check = LookaheadCheck()
    check.register("state", state_blocks(build_layout(cfg.layout), cfg, canary_early_us=early))
    if canaries:
        check.register("leak_next_close", leak_next_close)
        check.register("leak_centred_mean", leak_centred_mean)
        check.register("leak_pivot_at_own_bar", leak_pivot_at_own_bar)
    rng = np.random.default_rng(11)
    return check.run(frames, sample_times(frames, n, rng, closes=closes, trades=trades), rng=rng)


def test_state_blocks_are_causal_and_canaries_are_caught() -> None:
    report = _check(market(), "demo", 4, canaries=True)
    leaky = set(report.leaky())
    assert leaky == {
        "leak_next_close/next_close",
        "leak_centred_mean/centred_mean",
        "leak_pivot_at_own_bar/pivot_own_bar",
    }
    state = {k: v for k, v in report.blocks.items() if k.startswith("state/")}
    assert len(state) == len(build_layout(LayoutConfig(name="demo")).blocks)
    n = len(report.times_us)
    assert all(v.checked == 2 * n and v.differing == 0 and v.max_abs_diff == 0.0 for v in state.values())


@pytest.mark.parametrize("block", ["eth_1s", "eth_1m", "eth_1h", "eth_1d"])
def test_a_bar_shown_1us_early_is_caught(block: str) -> None:
    """The canary of the issue: one bar block sees its next bar 1 µs before that bar closes."""
    report = _check(market(), "demo", 0, canaries=False, early={block: 1}, trades=0)
    assert report.leaky() == [f"state/{block}"]


def test_the_times_hit_bar_closes_trades_and_the_whole_history() -> None:
    frames = market()
    times = sample_times(frames, 10, np.random.default_rng(0), closes=2, trades=3)
    start, _ = frames.tick_span_us()  # type: ignore[misc]
    first, _ = frames.span_us("eth", Timeframe.D1)
    assert (times < start).sum() >= 5 and times.min() >= first  # history, not only the tick period
    for tf in (Timeframe.S1, Timeframe.M1, Timeframe.H1, Timeframe.D1):
        closes = times[(times % tf.us == 0)]
        assert any((c - 1 in times) and (c + 1 in times) for c in closes), tf
    ts = frames.trades["eth"]["ts_us"].to_numpy()
    assert np.isin(times, ts).sum() >= 3


def test_the_fitted_statistic_and_real_cnn_rows_are_checked() -> None:
    """With ``fit_range`` the qty_scale is refitted on every variant; a non-causal fit is caught."""
    frames = market()
    start, end = frames.tick_span_us()  # type: ignore[misc]
    fit = TimeRange(start, end)
    cfg = FeaturesConfig(layout=LayoutConfig(name="demo"))
    layout = build_layout(cfg.layout)
    check = LookaheadCheck()
    check.register("state", state_blocks(layout, cfg, fit_range=fit))

    def whole_range_scale(raw: MarketFrames, t_B: npt.NDArray[np.int64]) -> Mapping[str, np.ndarray]:
        """Canary: the old, non-causal fit (the whole range's median at every time)."""
        stats = fit_feature_stats(raw, fit)
        return {"ticks": state_blocks(layout, cfg, replace(stats, qty_scale_steps=()))(raw, t_B)["eth_ticks"]}

    check.register("leak_whole_range_qty_scale", whole_range_scale)
    rng = np.random.default_rng(3)
    times = np.array([start + (end - start) // 3, start + (end - start) // 2], dtype=np.int64)
    report = check.run(frames, times, rng=rng)
    assert report.leaky() == ["leak_whole_range_qty_scale/ticks"]


def test_basic_layout_is_causal() -> None:
    report = _check(market(), "basic", 3, canaries=False)
    assert report.ok, report.leaky()


def test_demo_layout_with_return_blocks_is_causal() -> None:
    report = _check(market(), "demo", 3, canaries=False, returns=True)
    assert "state/btc_ret_1s" in report.blocks and report.blocks["state/btc_ret_1s"].checked > 0
    assert report.ok, report.leaky()


@pytest.mark.real
def test_full_layout_is_causal_on_real_data() -> None:
    frames = real_market()
    raw = MarketFrames(
        frames.symbols,
        frames.trades,
        {
            r: {tf: df for tf, df in by_tf.items() if tf is not Timeframe.S1} | {Timeframe.S1: by_tf[Timeframe.S1]}
            for r, by_tf in frames.bars.items()
        },
    )
    report = _check(raw, "full", 5, canaries=False)
    assert report.ok, report.leaky()


def test_perturbation_changes_only_the_future() -> None:
    frames = market()
    start, end = frames.tick_span_us()  # type: ignore[misc]
    t = (start + end) // 2
    pert = perturb_after(frames, int(t), np.random.default_rng(1))
    for role in ("eth", "btc"):
        before, after = frames.trades[role], pert.trades[role]
        past = pl.col("ts_us") <= t
        assert before.filter(past).equals(after.filter(past))
        fut, fut_p = before.filter(~past), after.filter(~past)
        assert fut.height != fut_p.height  # trades dropped and added
        assert after.item(before.filter(past).height, "ts_us") == t + 1  # the nearest future trade
        assert not np.isin(fut_p["ts_us"].to_numpy(), fut["ts_us"].to_numpy()).all()  # times moved
        assert after["ts_us"].is_sorted()
    for tf in (Timeframe.M1, Timeframe.H1):
        m1, m1p = frames.bars["eth"][tf], pert.bars["eth"][tf]
        closed = pl.col("open_us") + tf.us <= t
        assert m1.filter(closed).equals(m1p.filter(closed))
        if tf is Timeframe.M1:
            flipped = m1.filter(~closed)["is_filled"] != m1p.filter(~closed)["is_filled"]
            assert 0 < flipped.mean() < 1  # type: ignore[operator]
    # Still valid bars: the derived 1h / 1d resample without error.
    derive_frames(pert, int(end) + 1_000_000)


def test_derived_frames_keep_the_stored_history_before_the_1m_bars() -> None:
    """Real data has years of 1h / 1d bars and a month of 1m: the check must not lose that history."""
    frames = market()
    m1 = frames.bars["eth"][Timeframe.M1]
    cut = int(m1.item(0, "open_us")) + 5 * 86_400_000_000
    short = MarketFrames(
        frames.symbols,
        frames.trades,
        {
            r: {**by_tf, Timeframe.M1: by_tf[Timeframe.M1].filter(pl.col("open_us") >= cut)}
            for r, by_tf in frames.bars.items()
        },
    )
    _, end = frames.span_us()
    derived = derive_frames(short, end)
    for tf in (Timeframe.H1, Timeframe.D1):
        stored, rebuilt = frames.bars["eth"][tf], derived.bars["eth"][tf]
        assert rebuilt["open_us"].is_sorted() and rebuilt["open_us"].n_unique() == rebuilt.height
        assert rebuilt.item(0, "open_us") == stored.item(0, "open_us")
        assert rebuilt.height >= stored.height - 1


def test_derived_bars_equal_the_stored_ones() -> None:
    frames = market()
    _, end = frames.span_us()
    derived = derive_frames(frames, end)
    for tf in (Timeframe.H1, Timeframe.D1):
        stored, rebuilt = frames.bars["eth"][tf], derived.bars["eth"][tf]
        common = stored.join(rebuilt, on="open_us", suffix="_d")
        assert common.height >= rebuilt.height - 1
        assert (common["close"] == common["close_d"]).all()
