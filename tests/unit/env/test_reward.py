"""Reward factors by hand, their weighting, and causality: nothing after the t+1 mark reaches reward t."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
import pytest

from rltrade.config import EnvConfig, FeaturesConfig, LayoutConfig, RewardConfig
from rltrade.data.market import MarketFrames
from rltrade.data.splits import TimeRange
from rltrade.env.fills import CostModel
from rltrade.env.prices import build_period
from rltrade.env.reward import FACTOR_NAMES, compute_reward
from rltrade.env.trading_env import TradingEnv
from rltrade.features.layout import build_layout
from rltrade.features.market_features import build_market_features
from rltrade.features.state_batch import BatchStateBuilder
from rltrade.types import US_PER_SECOND, Regime
from tests.unit.env.market_cases import Setup, small_setup, trading_period

FREE = CostModel(0.0, 0.0, 0.0, 1.0)
SHAPED = RewardConfig(
    pnl_weight=2.0,
    direction_weight=0.1,
    regime_weight=0.2,
    volatility_weight=0.3,
    cnn_weight=0.4,
    pivot_weight=0.5,
    turnover_weight=0.6,
)


def _reward(cfg: RewardConfig = SHAPED, costs: CostModel = FREE, **over: object) -> dict[str, np.ndarray]:
    args: dict[str, object] = {
        "position": [1, -1, 0, 1],
        "prev_position": [0, -1, 1, 1],
        "log_ret": [0.002, 0.001, -0.003, -0.001],
        "carry": [0.0] * 4,
        "vol": [0.001] * 4,
        "regime": [Regime.TREND_UP, Regime.TREND_UP, Regime.TREND_DOWN, Regime.TREND_DOWN],
        "cnn_pred_BTO": None,
        "pivot_low_position": [1, 0, 0, -1],
        "pivot_high_position": [0, 1, 0, 1],
    }
    args.update(over)
    parts = compute_reward(costs=costs, cfg=cfg, **args)  # type: ignore[arg-type]
    return {name: parts.factors()[name] for name in FACTOR_NAMES} | {"total": parts.total, "cost": parts.cost}


def test_factors_by_hand() -> None:
    got = _reward()
    np.testing.assert_allclose(got["pnl"], [0.002, -0.001, 0.0, -0.001])
    np.testing.assert_array_equal(got["direction"], [1, -1, 0, -1])
    np.testing.assert_array_equal(got["regime"], [1, -1, 0, -1])  # long in trend-up +1, short in it -1
    np.testing.assert_allclose(got["volatility"], [2.0, -1.0, 0.0, -1.0])
    np.testing.assert_array_equal(got["pivot"], [1, -1, 0, -2])  # bought the low; sold the high ... ; both wrong
    np.testing.assert_array_equal(got["cnn"], 0.0)  # no CNN block
    np.testing.assert_array_equal(got["turnover"], [-1, 0, -1, 0])
    weights = [2.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    expected = sum(w * got[name] for w, name in zip(weights, FACTOR_NAMES, strict=True))
    np.testing.assert_allclose(got["total"], expected)


def test_volatility_factor_is_clipped() -> None:
    got = _reward(vol=[1e-5] * 4)
    np.testing.assert_array_equal(got["volatility"], [5.0, -5.0, 0.0, -5.0])


def test_cnn_agreement_counts_only_confident_timeframes() -> None:
    # Rows: P(down), P(flat), P(up), pivot distance, for 4 timeframes.
    confident_up = [0.1, 0.2, 0.7, 0.0]
    confident_down = [0.65, 0.3, 0.05, 0.0]
    unsure = [0.3, 0.4, 0.3, 0.0]
    absent = [0.0, 0.0, 0.0, 0.0]
    pred = np.array(
        [
            [confident_up, confident_up, unsure, absent],  # both confident say up
            [confident_up, confident_down, confident_down, unsure],  # 1 up, 2 down
            [confident_up, absent, absent, absent],  # flat position: 0
            [unsure, unsure, absent, absent],  # nothing confident: 0
        ]
    )
    got = _reward(cnn_pred_BTO=pred)
    np.testing.assert_allclose(got["cnn"], [1.0, -1.0 * (1 - 2) / 3, 0.0, 0.0])


def test_default_is_pnl_only_and_costs_enter_the_pnl() -> None:
    costs = CostModel(0.001, 0.5, 0.0, 1.0)
    got = _reward(RewardConfig(), costs)
    assert RewardConfig().pnl_only and not SHAPED.pnl_only
    np.testing.assert_array_equal(got["total"], got["pnl"])
    c = 0.001 + 0.5e-4
    np.testing.assert_allclose(got["pnl"], [0.002 + math.log1p(-c), -0.001, math.log1p(-c), -0.001])
    np.testing.assert_allclose(got["cost"], [c, 0.0, c, 0.0])
    with pytest.raises(ValueError, match="every reward weight is 0"):
        RewardConfig(pnl_weight=0.0)


def _perturbed_after(frames: MarketFrames, cut_us: int, factor: float = 1.01) -> MarketFrames:
    """Every price after ``cut_us`` scaled: bars closing after it (their open too when they open after it)."""
    bars = {}
    for role, by_tf in frames.bars.items():
        bars[role] = {}
        for tf, df in by_tf.items():
            after = pl.col("open_us") + tf.us > cut_us
            opened_after = pl.col("open_us") > cut_us
            bars[role][tf] = df.with_columns(
                pl.when(opened_after).then(pl.col("open") * factor).otherwise(pl.col("open")).alias("open"),
                pl.when(after).then(pl.col("high") * factor).otherwise(pl.col("high")).alias("high"),
                pl.when(opened_after).then(pl.col("low") * factor).otherwise(pl.col("low")).alias("low"),
                pl.when(after).then(pl.col("close") * factor).otherwise(pl.col("close")).alias("close"),
            )
    trades = {
        role: df.with_columns(
            pl.when(pl.col("ts_us") > cut_us).then(pl.col("price") * factor).otherwise(pl.col("price"))
        )
        for role, df in frames.trades.items()
    }
    return MarketFrames(frames.symbols, trades, bars)


def _run(setup: Setup, frames: MarketFrames, start: int, actions: np.ndarray) -> list[dict[str, float]]:
    cfg = FeaturesConfig(layout=LayoutConfig(name="demo"))
    layout = build_layout(cfg.layout)
    features = build_market_features(frames, layout, cfg)
    period = build_period(
        features, TimeRange(setup.ticks.start_us + 120 * US_PER_SECOND, setup.ticks.end_us), EnvConfig(), SHAPED
    )
    env = TradingEnv(BatchStateBuilder(layout, features), period, EnvConfig(ruin_equity=0.0), SHAPED)
    env.reset(options={"start": start})
    return [env.step(int(a))[4] for a in actions]


def test_reward_at_t_ignores_every_price_after_the_t_plus_1_mark() -> None:
    setup = small_setup()
    span = TimeRange(setup.ticks.start_us + 120 * US_PER_SECOND, setup.ticks.end_us)
    base_period = build_period(setup.features, span, EnvConfig(), SHAPED)
    start = 1500
    moving = (base_period.log_ret_T[start:-1] != 0) & (base_period.log_ret_T[start + 1 :] != 0)
    t = 100 + int(np.argmax(moving[100:]))  # a step whose own and next returns move, so a leak would show
    actions = np.random.default_rng(4).integers(0, 3, 200)
    # In the market at t (its reward reads the t+1 mark itself) and at t+1 (where the perturbation must show).
    actions[t], actions[t + 1] = 0, 2
    cut = int(base_period.fill_us_T[start + t + 1])  # the t+1 mark: where the next decision fills
    base = _run(setup, setup.frames, start, actions)
    moved = _run(setup, _perturbed_after(setup.frames, cut), start, actions)
    keys = [f"reward_{name}" for name in FACTOR_NAMES] + ["reward_total", "equity"]
    for k in range(t + 1):
        assert {key: moved[k][key] for key in keys} == {key: base[k][key] for key in keys}, f"step {k} changed"
    assert moved[t + 1]["reward_pnl"] != base[t + 1]["reward_pnl"]


def test_volatility_multiplier_scales_pnl_by_the_clipped_volatility_ratio() -> None:
    cfg = RewardConfig(volatility_mode="multiplier", volatility_weight=1.0, vol_clip=3.0, pnl_weight=2.0)
    pos = np.array([1.0, 1.0, -1.0, 1.0])
    r = np.full(4, 0.01)
    vol = np.array([1e-3, 4e-3, 1e-3, 1e-4])
    vol_ref = np.full(4, 2e-3)
    parts = compute_reward(**_multiplier_args(pos, r, vol, vol_ref), cfg=cfg)
    # ratio vol_ref / vol = 2, 0.5, 2, 20 → clipped to [1/3, 3]
    np.testing.assert_allclose(parts.volatility, [2.0, 0.5, 2.0, 3.0])
    np.testing.assert_allclose(parts.total, 2.0 * parts.pnl * parts.volatility)
    half = compute_reward(
        **_multiplier_args(pos, r, vol, vol_ref), cfg=cfg.model_copy(update={"volatility_weight": 0.5})
    )
    np.testing.assert_allclose(half.volatility, np.sqrt([2.0, 0.5, 2.0, 3.0]))
    with pytest.raises(ValueError, match="needs vol_ref"):
        compute_reward(**_multiplier_args(pos, r, vol, None), cfg=cfg)


def _multiplier_args(pos: np.ndarray, r: np.ndarray, vol: np.ndarray, vol_ref: np.ndarray | None) -> dict[str, Any]:
    n = pos.size
    return {
        "position": pos,
        "prev_position": pos,
        "log_ret": r,
        "carry": np.zeros(n),
        "vol": vol,
        "vol_ref": vol_ref,
        "regime": np.zeros(n, np.int8),
        "cnn_pred_BTO": None,
        "pivot_low_position": np.zeros(n),
        "pivot_high_position": np.zeros(n),
        "costs": CostModel(0.0, 0.0, 0.0, 1.0),
    }


def test_env_pays_the_multiplier_of_the_period_slow_and_fast_volatilities() -> None:
    setup = small_setup()
    cfg = RewardConfig(volatility_mode="multiplier", volatility_weight=1.0, pnl_weight=3.0, vol_ref_halflife_steps=900)
    period = trading_period(setup, EnvConfig(), cfg)
    assert period.vol_ref_T is not None and period.vol_ref_T.shape == period.vol_T.shape
    assert not np.array_equal(period.vol_ref_T, period.vol_T)  # the slow reference is another average
    env = TradingEnv(setup.builder, period, EnvConfig(ruin_equity=0.0), cfg)
    env.reset(options={"start": 400})
    for action in (2, 2, 0, 1, 0):
        i = env.core.t_idx[0]
        _, reward, _, _, info = env.step(action)
        m = np.clip(period.vol_ref_T[i] / period.vol_T[i], 1 / cfg.vol_clip, cfg.vol_clip)
        assert info["reward_volatility"] == pytest.approx(m)
        assert reward == pytest.approx(3.0 * info["reward_pnl"] * m)
