"""Oracles: the DP against brute force, its value against the backtest, and the bound over every policy."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rltrade.agent.learner import DQNLearner
from rltrade.config import AgentConfig, EnvConfig
from rltrade.data.splits import TimeRange
from rltrade.env.fills import CostModel, position_log_return
from rltrade.env.prices import build_period
from rltrade.features.account import ACCOUNT_DIM
from rltrade.training.backtest import backtest_actions, backtest_policy
from rltrade.training.baselines import (
    buy_and_hold_actions,
    flat_actions,
    momentum_actions,
    random_actions,
    threshold_oracle_actions,
)
from rltrade.training.bundle import greedy_policy
from rltrade.training.oracle import (
    dp_positions,
    expected_hold_moves,
    expected_move_oracle_actions,
    oracle_actions,
)
from rltrade.training.pipeline import block_specs
from rltrade.types import US_PER_SECOND
from tests.unit.env.market_cases import period_from_prices, signal_setup, trading_period

LOW_COST = EnvConfig(taker_fee=1e-4, half_spread_bps=0.5, impact_bps=0.0)
ROUNDING = 1e-9  # relative: the DP sums the same terms in another order than the backtest's cumsum


def final_log(period, actions, cfg: EnvConfig) -> float:  # type: ignore[no-untyped-def]
    equity = backtest_actions(period, actions, cfg, initial_equity=1.0).equity_T
    return float(np.log(equity[-1]))


costs_st = st.builds(
    EnvConfig,
    taker_fee=st.sampled_from([0.0, 1e-4, 1e-3, 5e-3]),
    half_spread_bps=st.sampled_from([0.0, 0.5, 3.0]),
    impact_bps=st.sampled_from([0.0, 2.0]),
    position_fraction=st.sampled_from([0.5, 1.0]),
)


@settings(max_examples=60, deadline=None)
@given(
    moves=st.lists(st.floats(-0.02, 0.02), min_size=1, max_size=6),
    carry=st.floats(-1e-3, 2e-3),
    cfg=costs_st,
)
def test_dp_equals_brute_force_over_every_action_sequence(moves: list[float], carry: float, cfg: EnvConfig) -> None:
    prices = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(moves)]))
    period = period_from_prices(prices, carry=carry)
    costs = CostModel.from_config(cfg)
    # Every sequence at once, by the backtest's formula: the steps' gains plus the final close.
    p_SN = np.array(list(itertools.product((-1, 0, 1), repeat=len(moves))))
    prev_SN = np.concatenate([np.zeros((p_SN.shape[0], 1), np.int64), p_SN[:, :-1]], axis=1)
    gain_SN, _ = position_log_return(p_SN, prev_SN, period.log_ret_T, period.carry_T, costs)
    best = float(np.max(gain_SN.sum(axis=1) + np.log1p(-costs.cost_fraction(np.abs(p_SN[:, -1])))))
    actions, value = dp_positions(period.log_ret_T, period.carry_T, costs)
    assert value == pytest.approx(best, rel=ROUNDING, abs=1e-12)
    assert final_log(period, actions, cfg) == pytest.approx(value, rel=ROUNDING, abs=1e-12)


def test_the_oracle_follows_moves_that_pay_their_cost_and_sits_out_the_rest() -> None:
    cfg = EnvConfig(taker_fee=1e-3, half_spread_bps=0.0, impact_bps=0.0, borrow_annual_rate=0.0)
    # +5 %, −0.05 % (leaving and coming back costs 0.2 %: hold through), +5 %, −0.01 % (the exit costs the
    # same one step earlier: leave before it), +0.01 % (not worth entering).
    period = period_from_prices(100.0 * np.exp(np.cumsum([0.0, 0.05, -0.0005, 0.05, -0.0001, 0.0001])))
    assert oracle_actions(period, cfg).tolist() == [2, 2, 2, 1, 1]
    # −3 % then −0.01 %: a short pays its round trip, and leaves before the last small move against it.
    period = period_from_prices(100.0 * np.exp(np.cumsum([0.0, -0.03, 0.0001])))
    assert oracle_actions(period, cfg).tolist() == [0, 1]
    # Zero moves: nothing pays, it stays flat.
    assert oracle_actions(period_from_prices([100.0] * 5), cfg).tolist() == [1, 1, 1, 1]


def test_a_short_that_pays_carry_is_avoided_and_one_that_receives_funding_is_taken() -> None:
    cfg = EnvConfig(taker_fee=0.0, half_spread_bps=0.0, impact_bps=0.0)
    flat_prices = [100.0] * 4
    assert oracle_actions(period_from_prices(flat_prices, carry=1e-4), cfg).tolist() == [1, 1, 1]
    assert oracle_actions(period_from_prices(flat_prices, carry=-1e-4), cfg).tolist() == [0, 0, 0]


def test_bad_input_is_refused() -> None:
    costs = CostModel.from_config(LOW_COST)
    with pytest.raises(ValueError, match="at least one step"):
        dp_positions(np.zeros(0), np.zeros(0), costs)
    with pytest.raises(ValueError, match="finite"):
        dp_positions(np.array([0.0, math.nan]), np.zeros(2), costs)


def _random_agent_policy(setup):  # type: ignore[no-untyped-def]
    agent = AgentConfig(network="structured", encoder_channels=(4,), encoder_patches=(4,), encoder_hidden=(16,))
    learner = DQNLearner(agent, setup.layout.size, ACCOUNT_DIM, blocks=block_specs(setup.layout))
    return greedy_policy(learner)


def test_the_perfect_foresight_oracle_bounds_every_policy_on_the_path() -> None:
    setup = signal_setup()
    start = setup.ticks.start_us + 120 * US_PER_SECOND
    period = build_period(setup.features, TimeRange(start, start + 1800 * US_PER_SECOND), LOW_COST)
    truth = setup.frames.extras["signal_truth"]
    bound = final_log(period, oracle_actions(period, LOW_COST), LOW_COST)
    others = {
        "flat": flat_actions(period),
        "buy_and_hold": buy_and_hold_actions(period),
        "momentum": momentum_actions(period, 60),
        "threshold_oracle": threshold_oracle_actions(period, truth, LOW_COST),
        "expected_move_oracle": expected_move_oracle_actions(period, truth, LOW_COST),
        **{f"random_{s}": random_actions(period, np.random.default_rng(s)) for s in range(3)},
    }
    got = {name: final_log(period, a, LOW_COST) for name, a in others.items()}
    agent = backtest_policy(setup.builder, period, _random_agent_policy(setup), LOW_COST, initial_equity=1.0)
    got["agent"] = float(np.log(agent.equity_T[-1]))
    for name, value in got.items():
        assert value <= bound * (1 + ROUNDING), name
    # It is a real bound, not a tie: far above the best of them on a 1 s clock at maker-level costs.
    assert bound > max(got.values()) + 0.01


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), switch=st.floats(0.0, 1.0))
def test_no_random_action_sequence_beats_the_oracle(seed: int, switch: float) -> None:
    setup = signal_setup()
    period = trading_period(setup, LOW_COST)
    rng = np.random.default_rng(seed)
    # Sticky random sequences: hold the last action, switching with probability ``switch`` per step.
    draws = rng.integers(0, 3, period.n_steps)
    keep = rng.random(period.n_steps) >= switch
    idx = np.where(keep, 0, np.arange(period.n_steps))
    np.maximum.accumulate(idx, out=idx)
    actions = draws[idx]
    bound = final_log(period, oracle_actions(period, LOW_COST), LOW_COST)
    assert final_log(period, actions, LOW_COST) <= bound * (1 + ROUNDING)


def test_expected_hold_moves_cover_each_hold_once() -> None:
    setup = signal_setup()
    period = trading_period(setup, LOW_COST)
    truth = setup.frames.extras["signal_truth"]
    moves = expected_hold_moves(period, truth)
    assert moves.shape == (period.n_steps,)
    frame = truth.frame
    sec = frame["open_us"].to_numpy()
    inside = (sec > period.fill_us_T[0]) & (sec <= period.fill_us_T[period.n_steps])
    assert moves.sum() == pytest.approx(frame["expected_log_ret"].to_numpy()[inside].sum(), rel=1e-9)
    # The planted move is a real share of the realised one: they correlate clearly.
    assert np.corrcoef(moves, period.log_ret_T)[0, 1] > 0.3


def test_the_expected_move_oracle_earns_the_signal_and_never_trades_without_one() -> None:
    setup = signal_setup()
    period = trading_period(setup, LOW_COST)
    truth = setup.frames.extras["signal_truth"]
    plan = expected_move_oracle_actions(period, truth, LOW_COST)
    got = backtest_actions(period, plan, LOW_COST).metrics
    assert got["total_return"] > 0.005 and got["n_trades"] > 20
    threshold = backtest_actions(period, threshold_oracle_actions(period, truth, LOW_COST), LOW_COST).metrics
    assert got["total_return"] > threshold["total_return"]
    # At the default 0.1 % fee (a 20 bp round trip against about 1 bp of signal a second) it rarely trades.
    dear = backtest_actions(period, expected_move_oracle_actions(period, truth, EnvConfig()), EnvConfig()).metrics
    assert dear["n_trades"] < got["n_trades"] / 10
    # Without a signal there is nothing to expect: it stays flat.
    none = dataclasses.replace(truth, frame=truth.frame.with_columns(pl.lit(0.0).alias("expected_log_ret")))
    assert np.all(expected_move_oracle_actions(period, none, LOW_COST) == 1)
