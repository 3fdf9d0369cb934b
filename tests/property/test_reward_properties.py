"""Reward properties (SPEC §2.5), checked with hypothesis on random price paths and action sequences.

* costs (fee, spread, impact, borrow) never increase the reward, nor the backtest's final equity;
* long and short are symmetric: with zero costs, the mirrored path ``p → p0² / p`` (log returns negated)
  gives the negated PnL for the same actions, and with costs the mirrored path with mirrored actions
  gives the same reward;
* PnL compounds right: the env's PnL rewards of an episode sum to the log of its final equity ratio,
  checked against a plain multiplicative equity loop;
* PnL-only is the default mode: the total is the PnL factor;
* the same three hold with the volatility factor as a multiplier on PnL (the design's form), and its
  weight 0 is PnL-only exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rltrade.config import EnvConfig, RewardConfig
from rltrade.env.fills import CostModel
from rltrade.env.reward import compute_reward
from rltrade.env.trading_env import EpisodeBatch
from rltrade.training.backtest import backtest_actions
from tests.unit.env.market_cases import period_from_prices, small_setup

PROPS = settings(max_examples=80, deadline=None, derandomize=True)
ENV_PROPS = settings(max_examples=25, deadline=None, derandomize=True)

log_returns = st.lists(st.floats(-0.05, 0.05, allow_nan=False), min_size=2, max_size=40)
fees = st.floats(0.0, 0.005)
bps = st.floats(0.0, 20.0)
fractions = st.floats(0.1, 2.0)


@st.composite
def path_and_actions(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    r = np.array(draw(log_returns))
    prices = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(r)]))
    actions = np.array(draw(st.lists(st.integers(0, 2), min_size=r.size, max_size=r.size)))
    return prices, actions


def _reward(costs: CostModel, cfg: RewardConfig, pos: np.ndarray, prev: np.ndarray, r: np.ndarray, carry: float):
    n = pos.size
    # A volatility path of squared returns only (as the env's EW volatilities are): the same on a mirrored path.
    vol = np.sqrt(1e-6 + np.concatenate([[0.0], r[:-1] ** 2]))
    return compute_reward(
        position=pos,
        prev_position=prev,
        log_ret=r,
        carry=np.full(n, carry),
        vol=np.full(n, 1e-3) if cfg.volatility_mode == "additive" else vol,
        vol_ref=np.full(n, 2e-3),
        regime=np.zeros(n, np.int8),
        cnn_pred_BTO=None,
        pivot_low_position=np.zeros(n),
        pivot_high_position=np.zeros(n),
        costs=costs,
        cfg=cfg,
    )


@PROPS
@given(
    path_and_actions(),
    fees,
    bps,
    bps,
    fractions,
    st.floats(0.0, 1e-3),
    st.floats(0.0, 3.0),
    st.floats(0.0, 3.0),
    st.floats(-1.0, 1.0),
)
def test_costs_never_increase_the_reward(
    case: tuple[np.ndarray, np.ndarray],
    fee: float,
    spread: float,
    impact: float,
    fraction: float,
    carry: float,
    w_pnl: float,
    w_vol: float,
    w_dir: float,
) -> None:
    prices, actions = case
    pos = actions - 1
    prev = np.concatenate([[0], pos[:-1]])
    r = np.diff(np.log(prices))
    cfg = RewardConfig(pnl_weight=w_pnl + 1e-3, volatility_weight=w_vol, direction_weight=w_dir, vol_clip=1e9)
    free = _reward(CostModel(0.0, 0.0, 0.0, fraction), cfg, pos, prev, r, 0.0)
    paid = _reward(CostModel(fee, spread, impact, fraction), cfg, pos, prev, r, carry)
    assert np.all(paid.total <= free.total + 1e-15)
    assert np.all(paid.pnl <= free.pnl)
    env_free = EnvConfig(taker_fee=0.0, half_spread_bps=0.0, impact_bps=0.0, position_fraction=fraction)
    env_paid = EnvConfig(taker_fee=fee, half_spread_bps=spread, impact_bps=impact, position_fraction=fraction)
    period = period_from_prices(prices, carry=carry)
    assert backtest_actions(period, actions, env_paid).equity_T[-1] <= backtest_actions(
        period_from_prices(prices), actions, env_free
    ).equity_T[-1] * (1 + 1e-12)


@PROPS
@given(path_and_actions(), fees, bps, fractions)
def test_a_mirrored_path_gives_the_negated_pnl_and_mirrored_actions_the_same_reward(
    case: tuple[np.ndarray, np.ndarray], fee: float, spread: float, fraction: float
) -> None:
    prices, actions = case
    # Mirrored in log space exactly: mirroring prices (p0² / p) leaves ±1e-16 where r is 0, and
    # sign(r) in the direction factor would turn that rounding into a ±1 difference.
    r = np.diff(np.log(prices))
    r_mirror = -r
    pos = actions - 1
    prev = np.concatenate([[0], pos[:-1]])
    pnl_only = RewardConfig()
    free = CostModel(0.0, 0.0, 0.0, fraction)
    np.testing.assert_allclose(
        _reward(free, pnl_only, pos, prev, r_mirror, 0.0).total,
        -_reward(free, pnl_only, pos, prev, r, 0.0).total,
        atol=1e-15,
    )
    costs = CostModel(fee, spread, 1.0, fraction)
    shaped = RewardConfig(direction_weight=0.3, volatility_weight=0.2)
    np.testing.assert_allclose(
        _reward(costs, shaped, -pos, -prev, r_mirror, 0.0).total,
        _reward(costs, shaped, pos, prev, r, 0.0).total,
        atol=1e-15,
    )


@ENV_PROPS
@given(path_and_actions(), fees, bps, st.floats(0.1, 1.0), st.floats(0.0, 1e-3))
def test_env_pnl_rewards_compound_to_the_final_equity(
    case: tuple[np.ndarray, np.ndarray], fee: float, impact: float, fraction: float, carry: float
) -> None:
    prices, actions = case
    setup = small_setup()
    cfg = EnvConfig(taker_fee=fee, impact_bps=impact, position_fraction=fraction, ruin_equity=0.0)
    period = period_from_prices(prices, carry=carry, start_us=setup.ticks.start_us + 600_000_000)
    core = EpisodeBatch(setup.builder, period, cfg, RewardConfig(), 1, episode_steps=period.n_steps)
    core.begin(np.ones(1, bool), np.zeros(1, np.int64))
    rewards = []
    for a in actions:
        core.observe()
        rewards.append(float(core.advance([a]).parts.total[0]))
    # Oracle: multiply equity step by step, no logs.
    costs = CostModel.from_config(cfg)
    equity, held = 1.0, 0
    for i, a in enumerate(actions):
        pos = int(a) - 1
        equity *= 1.0 - float(costs.cost_fraction(abs(pos - held)))
        equity *= (prices[i + 1] / prices[i]) ** (fraction * pos)
        if pos < 0:
            equity *= 1.0 - fraction * carry
        held = pos
    assert math.fsum(rewards) == pytest.approx(math.log(equity), abs=1e-12)
    assert float(np.exp(core.book.log_equity[0])) == pytest.approx(equity, rel=1e-12)
    # The backtest's equity before the final liquidation is the same compounding.
    result = backtest_actions(period, actions, cfg, initial_equity=1.0)
    last_cost = float(costs.cost_fraction(abs(int(actions[-1]) - 1)))
    assert result.equity_T[-1] == pytest.approx(equity * (1 - last_cost), rel=1e-12)


@PROPS
@given(path_and_actions(), fees, fractions)
def test_pnl_only_is_the_default_and_its_total_is_the_pnl(
    case: tuple[np.ndarray, np.ndarray], fee: float, fraction: float
) -> None:
    prices, actions = case
    pos = actions - 1
    prev = np.concatenate([[0], pos[:-1]])
    parts = _reward(CostModel(fee, 1.0, 1.0, fraction), RewardConfig(), pos, prev, np.diff(np.log(prices)), 1e-5)
    assert RewardConfig().pnl_only
    np.testing.assert_array_equal(parts.total, parts.pnl)


MULTIPLIER = RewardConfig(volatility_mode="multiplier", volatility_weight=1.0, direction_weight=0.1, vol_clip=4.0)


@PROPS
@given(path_and_actions(), fees, bps, fractions, st.floats(0.0, 1e-3), st.floats(0.0, 2.0))
def test_multiplier_mode_costs_never_increase_the_reward(
    case: tuple[np.ndarray, np.ndarray], fee: float, spread: float, fraction: float, carry: float, w_vol: float
) -> None:
    prices, actions = case
    pos = actions - 1
    prev = np.concatenate([[0], pos[:-1]])
    r = np.diff(np.log(prices))
    cfg = MULTIPLIER.model_copy(update={"volatility_weight": w_vol})
    free = _reward(CostModel(0.0, 0.0, 0.0, fraction), cfg, pos, prev, r, 0.0)
    paid = _reward(CostModel(fee, spread, 1.0, fraction), cfg, pos, prev, r, carry)
    assert np.all(paid.total <= free.total + 1e-15)
    assert np.all(paid.volatility > 0) and np.array_equal(paid.volatility, free.volatility)


@PROPS
@given(path_and_actions(), fees, bps, fractions)
def test_multiplier_mode_is_mirror_symmetric(
    case: tuple[np.ndarray, np.ndarray], fee: float, spread: float, fraction: float
) -> None:
    prices, actions = case
    r = np.diff(np.log(prices))
    pos = actions - 1
    prev = np.concatenate([[0], pos[:-1]])
    pnl_scaled = MULTIPLIER.model_copy(update={"direction_weight": 0.0})
    free = CostModel(0.0, 0.0, 0.0, fraction)
    np.testing.assert_allclose(
        _reward(free, pnl_scaled, pos, prev, -r, 0.0).total,
        -_reward(free, pnl_scaled, pos, prev, r, 0.0).total,
        atol=1e-15,
    )
    costs = CostModel(fee, spread, 1.0, fraction)
    np.testing.assert_allclose(
        _reward(costs, MULTIPLIER, -pos, -prev, -r, 0.0).total,
        _reward(costs, MULTIPLIER, pos, prev, r, 0.0).total,
        atol=1e-15,
    )


@PROPS
@given(path_and_actions(), fees, fractions, st.floats(0.1, 100.0))
def test_multiplier_mode_with_weight_zero_is_pnl_only(
    case: tuple[np.ndarray, np.ndarray], fee: float, fraction: float, w_pnl: float
) -> None:
    prices, actions = case
    pos = actions - 1
    prev = np.concatenate([[0], pos[:-1]])
    cfg = RewardConfig(volatility_mode="multiplier", volatility_weight=0.0, pnl_weight=w_pnl)
    assert cfg.pnl_only
    parts = _reward(CostModel(fee, 1.0, 1.0, fraction), cfg, pos, prev, np.diff(np.log(prices)), 1e-5)
    np.testing.assert_array_equal(parts.total, w_pnl * parts.pnl)
    np.testing.assert_array_equal(parts.volatility, np.ones_like(parts.pnl))
