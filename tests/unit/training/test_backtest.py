"""Backtest engine: trades table and equity by hand, policies on the env's observations, baselines, threshold
oracle."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest

from rltrade.agent.learner import DQNLearner, LearnerConfig
from rltrade.config import EnvConfig
from rltrade.env.fills import CostModel
from rltrade.features.account import ACCOUNT_DIM, TIME_IN_TRADE_SCALE
from rltrade.training.backtest import ChunkPolicy, backtest_actions, backtest_policy
from rltrade.training.baselines import (
    buy_and_hold_actions,
    flat_actions,
    known_expected_move,
    momentum_actions,
    random_actions,
    threshold_oracle_actions,
)
from rltrade.training.bundle import greedy_policy
from rltrade.training.pipeline import block_specs
from tests.unit.env.market_cases import period_from_prices, signal_setup, small_setup, trading_period

CFG = EnvConfig(taker_fee=0.001, half_spread_bps=0.0, impact_bps=0.0, borrow_annual_rate=0.0)
C = 0.001  # cost of one unit of change under CFG


def test_trades_and_equity_by_hand() -> None:
    prices = [100.0, 110.0, 121.0, 121.0, 110.0, 100.0]
    period = period_from_prices(prices)
    # Long at 0 and 1, reverse to short at 2, hold it at 3, close it at 4 (nothing left to liquidate).
    result = backtest_actions(period, [2, 2, 0, 0, 1], CFG, initial_equity=1000.0)
    e = 1000.0 * np.array(
        [
            1.0,
            (1 - C) * 1.1,
            (1 - C) * 1.21,
            (1 - C) * 1.21 * (1 - 2 * C),
            (1 - C) * 1.21 * (1 - 2 * C) * (121 / 110),
            (1 - C) * 1.21 * (1 - 2 * C) * (121 / 110) * (1 - C),
        ]
    )
    np.testing.assert_allclose(result.equity_T, e)
    trades = result.trades
    assert trades["side"].to_list() == ["long", "short"]
    assert trades["entry_price"].to_list() == [100.0, 121.0] and trades["exit_price"].to_list() == [121.0, 110.0]
    assert trades["entry_step"].to_list() == [0, 2] and trades["exit_step"].to_list() == [2, 4]
    np.testing.assert_array_equal(trades["entry_us"], period.fill_us_T[[0, 2]])
    # The reversal's cost is split: half closes the long, half opens the short.
    half = math.sqrt(1 - 2 * C)
    np.testing.assert_allclose(trades["pnl"], [e[2] * half - 1000.0, e[5] - e[2] * half])
    np.testing.assert_allclose(trades["fees"], [1000 * C + C * e[2], C * e[2] + C * e[4]])
    assert trades["pnl"].sum() == pytest.approx(e[-1] - 1000.0)
    assert trades["fees"].sum() == pytest.approx(result.metrics["fees_paid"])
    assert result.metrics["n_trades"] == 2 and result.metrics["win_rate"] == 1.0


def test_an_open_position_is_closed_at_the_end_and_pays_its_exit() -> None:
    period = period_from_prices([100.0, 105.0, 110.0])
    result = backtest_actions(period, [2, 2], CFG, initial_equity=1.0)
    assert result.equity_T[-1] == pytest.approx((1 - C) * 1.1 * (1 - C))
    assert result.metrics["total_return"] == pytest.approx((1 - C) ** 2 * 1.1 - 1)
    assert result.steps["position"].to_list() == [1, 1, 0]
    assert result.trades["exit_step"].to_list() == [2]
    with pytest.raises(ValueError, match="need 2 actions"):
        backtest_actions(period, [2, 2, 2], CFG)


def test_policy_backtest_runs_the_period_on_env_observations() -> None:
    setup = small_setup()
    period = trading_period(setup, CFG)
    hold = np.log1p(5) / TIME_IN_TRADE_SCALE

    def policy(obs_BF: np.ndarray) -> np.ndarray:
        # Long for 5 steps, then flat for one, read from the account block: the policy sees its position.
        assert obs_BF.shape == (1, setup.layout.size + ACCOUNT_DIM)
        position, time_in_trade = obs_BF[0, -ACCOUNT_DIM], obs_BF[0, -ACCOUNT_DIM + 2]
        return np.array([1 if position == 1 and time_in_trade >= hold - 1e-6 else 2])

    result = backtest_policy(setup.builder, period, policy, CFG, chunk=100)
    assert result.steps["t_idx"][0] == 0 and result.steps.height == period.n_steps + 1
    steps = (result.trades["exit_step"] - result.trades["entry_step"]).to_numpy()
    assert np.all(steps[:-1] == 5) and result.trades.height == math.ceil(period.n_steps / 6)
    again = backtest_actions(period, result.steps["position"].to_numpy()[:-1] + 1, CFG)
    assert again.metrics == result.metrics
    json.loads(result.metrics_json())


class _ChunkLong:
    """A ChunkPolicy that goes long, checking that each step's observation is row ``j`` of its chunk."""

    def __init__(self) -> None:
        self.chunks: list[int] = []

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        raise AssertionError("a chunk policy is never called per observation")

    def encode(self, states_BF: np.ndarray) -> Callable[[int, np.ndarray], np.ndarray]:
        self.chunks.append(states_BF.shape[0])

        def act(j: int, obs: np.ndarray) -> np.ndarray:
            np.testing.assert_array_equal(obs[0, : states_BF.shape[1]], states_BF[j])
            return np.array([2 if obs[0, -ACCOUNT_DIM] < 1 else 1])

        return act


def test_a_chunk_policy_is_offered_each_chunk_before_its_steps() -> None:
    setup = small_setup()
    period = trading_period(setup, CFG)
    policy = _ChunkLong()
    result = backtest_policy(setup.builder, period, policy, CFG, chunk=100)
    assert policy.chunks == [min(100, period.n_steps - c) for c in range(0, period.n_steps, 100)]
    assert result.steps["position"].to_list()[:-1] == [1, 0] * (period.n_steps // 2) + [1] * (period.n_steps % 2)


def test_the_greedy_policy_backtests_its_encoded_chunks_with_the_per_step_actions() -> None:
    setup = signal_setup()
    period = trading_period(setup, CFG)
    small = {"batch_size": 8, "buffer_size": 64, "network": "structured", "encoder_channels": (4,)}
    config = LearnerConfig.model_validate({**small, "encoder_patches": (5,), "encoder_hidden": (16,), "seed": 4})
    learner = DQNLearner(config, setup.layout.size, ACCOUNT_DIM, blocks=block_specs(setup.layout))
    policy = greedy_policy(learner)
    assert isinstance(policy, ChunkPolicy)
    chunked = backtest_policy(setup.builder, period, policy, CFG, chunk=64)
    plain = backtest_policy(setup.builder, period, lambda obs: policy(obs), CFG, chunk=64)
    assert chunked.steps.equals(plain.steps) and chunked.metrics == plain.metrics
    assert chunked.trades.height > 0  # the untrained network trades, so the actions are compared
    assert learner.online.training  # the backtest's eval mode ended with it


def test_baselines_run_and_flat_and_buy_and_hold_are_exact() -> None:
    setup = small_setup()
    period = trading_period(setup, CFG)
    flat = backtest_actions(period, flat_actions(period), CFG)
    assert flat.metrics["total_return"] == 0.0 and flat.metrics["n_trades"] == 0 and flat.metrics["exposure"] == 0.0
    hold = backtest_actions(period, buy_and_hold_actions(period), CFG)
    growth = period.fill_price_T[-1] / period.fill_price_T[0]
    assert hold.metrics["total_return"] == pytest.approx((1 - C) ** 2 * growth - 1)
    assert hold.metrics["n_trades"] == 1 and hold.metrics["exposure"] == 1.0
    a = random_actions(period, np.random.default_rng(5))
    np.testing.assert_array_equal(a, random_actions(period, np.random.default_rng(5)))
    assert backtest_actions(period, a, CFG).metrics["n_trades"] > 100
    mom = momentum_actions(period, 30)
    log_m = np.log(period.mark_T)
    i = np.arange(30, period.n_steps)
    np.testing.assert_array_equal(mom[i], np.sign(log_m[i] - log_m[i - 30]) + 1)  # marks up to t only
    assert np.all(mom[:30] == 1)


def test_threshold_oracle_beats_every_baseline_after_fees_with_the_planted_signal() -> None:
    # The synthetic market quotes a 1 bp spread (half spread 0.5 bp); a 1 bp fee is a maker-level rate.
    setup = signal_setup()
    cfg = EnvConfig(taker_fee=1e-4, half_spread_bps=0.5, impact_bps=0.0)
    period = trading_period(setup, cfg)
    truth = setup.frames.extras["signal_truth"]
    oracle = backtest_actions(period, threshold_oracle_actions(period, truth, cfg), cfg).metrics
    others = {
        "flat": flat_actions(period),
        "buy_and_hold": buy_and_hold_actions(period),
        "momentum": momentum_actions(period, 60),
        "random": random_actions(period, np.random.default_rng(0)),
    }
    for name, actions in others.items():
        assert oracle["total_return"] > backtest_actions(period, actions, cfg).metrics["total_return"], name
    assert oracle["total_return"] > 0.005 and oracle["n_trades"] > 20
    # Its trades follow the announced move: it is right far more often than a coin.
    assert oracle["direction_accuracy"] > 0.6


def test_threshold_oracle_enters_only_when_the_announced_move_covers_the_round_trip() -> None:
    setup = signal_setup()
    period = trading_period(setup)  # default costs: 0.1 % taker fee
    truth = setup.frames.extras["signal_truth"]
    move = known_expected_move(period, truth)
    threshold = CostModel.from_config(EnvConfig()).round_trip
    # About 1 bp of announced move against a 20 bp round trip: at the default fee the signal cannot pay.
    assert np.abs(move).max() < threshold
    assert np.all(threshold_oracle_actions(period, truth, EnvConfig()) == 1)
    entries = threshold_oracle_actions(
        period, truth, cfg := EnvConfig(taker_fee=1e-4, half_spread_bps=0.5, impact_bps=0.0)
    )
    new_long = (entries == 2) & (np.concatenate([[1], entries[:-1]]) != 2)
    assert np.all(move[new_long] > CostModel.from_config(cfg).round_trip)
