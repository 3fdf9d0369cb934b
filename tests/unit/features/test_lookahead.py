"""The look-ahead check: zero differences for every state block; every planted leak is flagged."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest

from rltrade.config import DataConfig, FeaturesConfig, LayoutConfig, SyntheticConfig
from rltrade.data.align import BarArrays, last_closed_index
from rltrade.data.market import MarketFrames, load_market
from rltrade.features.layout import build_layout
from rltrade.features.lookahead import (
    LookaheadCheck,
    LookaheadReport,
    derive_frames,
    perturb_after,
    sample_times,
    state_blocks,
)
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


def _check(frames: MarketFrames, name: str, n: int, *, canaries: bool, returns: bool = False) -> LookaheadReport:
    cfg = FeaturesConfig(layout=LayoutConfig(name=name, returns=returns))  # type: ignore[arg-type]
    check = LookaheadCheck()
    check.register("state", state_blocks(build_layout(cfg.layout), cfg))
    if canaries:
        check.register("leak_next_close", leak_next_close)
        check.register("leak_centred_mean", leak_centred_mean)
        check.register("leak_pivot_at_own_bar", leak_pivot_at_own_bar)
    rng = np.random.default_rng(11)
    return check.run(frames, sample_times(frames, n, rng), rng=rng)


def test_state_blocks_are_causal_and_canaries_are_caught() -> None:
    report = _check(market(), "demo", 8, canaries=True)
    leaky = set(report.leaky())
    assert leaky == {
        "leak_next_close/next_close",
        "leak_centred_mean/centred_mean",
        "leak_pivot_at_own_bar/pivot_own_bar",
    }
    state = {k: v for k, v in report.blocks.items() if k.startswith("state/")}
    assert len(state) == len(build_layout(LayoutConfig(name="demo")).blocks)
    assert all(v.checked == 16 and v.differing == 0 for v in state.values())


def test_basic_layout_is_causal() -> None:
    report = _check(market(), "basic", 5, canaries=False)
    assert report.ok, report.leaky()


def test_demo_layout_with_return_blocks_is_causal() -> None:
    report = _check(market(), "demo", 5, canaries=False, returns=True)
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
    t = sample_times(frames, 1, np.random.default_rng(0))[0]
    pert = perturb_after(frames, int(t), np.random.default_rng(1))
    for role in ("eth", "btc"):
        before, after = frames.trades[role], pert.trades[role]
        past = pl.col("ts_us") <= t
        assert before.filter(past).equals(after.filter(past))
        assert not before.filter(~past).equals(after.filter(~past))
    m1, m1p = frames.bars["eth"][Timeframe.M1], pert.bars["eth"][Timeframe.M1]
    closed = pl.col("open_us") + Timeframe.M1.us <= t
    assert m1.filter(closed).equals(m1p.filter(closed))


def test_derived_bars_equal_the_stored_ones() -> None:
    frames = market()
    _, end = frames.span_us()
    derived = derive_frames(frames, end)
    for tf in (Timeframe.H1, Timeframe.D1):
        stored, rebuilt = frames.bars["eth"][tf], derived.bars["eth"][tf]
        common = stored.join(rebuilt, on="open_us", suffix="_d")
        assert common.height >= rebuilt.height - 1
        assert (common["close"] == common["close_d"]).all()
