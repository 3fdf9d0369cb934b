"""The Gymnasium env: API check, observations, fills by hand, episode ends, compounding, SB3 trains on it."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from rltrade.config import EnvConfig, RewardConfig
from rltrade.env.fills import CostModel, held_positions
from rltrade.env.prices import PeriodData
from rltrade.env.trading_env import TradingEnv
from rltrade.features.account import ACCOUNT_DIM, account_vector
from rltrade.training.backtest import backtest_policy
from tests.unit.env.market_cases import period_from_prices, small_setup, trading_period

CFG = EnvConfig(taker_fee=0.001, half_spread_bps=0.5, impact_bps=1.0, borrow_annual_rate=0.0, episode_steps=50)


def _period(prices: list[float], *, carry: float = 0.0) -> PeriodData:
    """A hand-made price path inside the small market's tick span (real states, chosen fills)."""
    return period_from_prices(prices, carry=carry, start_us=small_setup().ticks.start_us + 600_000_000)


def _env(period: PeriodData, cfg: EnvConfig = CFG, reward: RewardConfig = RewardConfig()) -> TradingEnv:
    return TradingEnv(small_setup().builder, period, cfg, reward)


def test_passes_the_gymnasium_env_checker() -> None:
    setup = small_setup()
    check_env(TradingEnv(setup.builder, trading_period(setup), CFG), skip_render_check=True)


def test_observation_is_the_market_state_then_the_account_block() -> None:
    setup = small_setup()
    period = trading_period(setup, CFG)
    env = TradingEnv(setup.builder, period, CFG)
    obs, info = env.reset(seed=5)
    t_idx = info["t_idx"]
    assert obs.shape == (setup.layout.size + ACCOUNT_DIM,) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[: setup.layout.size], setup.builder.gather(period.clock.time_of([t_idx]))[0])
    np.testing.assert_array_equal(obs[-ACCOUNT_DIM:], account_vector(0, 0.0, 0, 0.0, 0.0))
    obs, _, _, _, info = env.step(2)
    assert info["t_idx"] == t_idx + 1 and info["position"] == 1
    np.testing.assert_array_equal(obs[: setup.layout.size], setup.builder.gather(period.clock.time_of([t_idx + 1]))[0])
    assert obs[-ACCOUNT_DIM] == 1.0 and obs[-ACCOUNT_DIM + 2] > 0  # long, one step in the trade


def test_fills_and_costs_by_hand() -> None:
    env = _env(_period([100.0, 101.0, 99.0, 99.0, 100.0]))
    env.reset(options={"start": 0})
    c1 = CostModel.from_config(CFG).cost_fraction(1)[()]
    c2 = CostModel.from_config(CFG).cost_fraction(2)[()]
    assert c1 == pytest.approx(0.001 + 0.5e-4 + 1e-4) and c2 == pytest.approx(2 * (0.001 + 0.5e-4 + 2e-4))
    _, r0, *_ = env.step(2)  # long at 100, held to 101
    assert r0 == pytest.approx(math.log(101 / 100) + math.log1p(-c1))
    _, r1, *_, info = env.step(0)  # reverse to short at 101, held to 99
    assert r1 == pytest.approx(math.log(101 / 99) + math.log1p(-c2))
    _, r2, *_ = env.step(0)  # hold the short over a flat step: no cost, no borrow configured
    assert r2 == 0.0
    _, r3, *_, info = env.step(1)  # close at 99: pays the exit, earns nothing after
    assert r3 == pytest.approx(math.log1p(-c1))
    assert info["equity"] == pytest.approx(math.exp(r0 + r1 + r2 + r3))
    assert info["fees_paid"] == pytest.approx(c1 + c2 * math.exp(r0) + c1 * math.exp(r0 + r1 + r2))


def test_shorts_pay_borrow_per_step() -> None:
    env = _env(_period([100.0] * 6, carry=1e-4))
    env.reset(options={"start": 0})
    rewards = [env.step(a)[1] for a in (0, 0, 2, 2, 1)]
    c1 = CostModel.from_config(CFG).cost_fraction(1)[()]
    c2 = CostModel.from_config(CFG).cost_fraction(2)[()]
    borrow = math.log1p(-1e-4)
    # Short: entry cost + borrow, then borrow alone; long: the reversal's cost, then nothing.
    assert rewards == pytest.approx([math.log1p(-c1) + borrow, borrow, math.log1p(-c2), 0.0, math.log1p(-c1)])


def test_rewards_compound_to_the_equity() -> None:
    setup = small_setup()
    env = TradingEnv(setup.builder, trading_period(setup, CFG), CFG.model_copy(update={"episode_steps": 300}))
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    total, done, info = 0.0, False, {}
    while not done:
        _, r, term, trunc, info = env.step(int(rng.integers(0, 3)))
        total += r
        done = term or trunc
        assert r == info["reward_pnl"] == info["reward_total"]
    assert math.exp(total) == pytest.approx(info["equity"], rel=1e-12)


def test_episodes_start_at_seeded_random_steps_and_truncate() -> None:
    setup = small_setup()
    period = trading_period(setup, CFG)
    env = TradingEnv(setup.builder, period, CFG)
    starts = [env.reset(seed=s)[1]["t_idx"] for s in (1, 1, 2, 3)]
    assert starts[0] == starts[1] and len(set(starts)) == 3
    start = env.reset(options={"start": 10})[1]["t_idx"]
    flags = [env.step(1)[2:4] for _ in range(CFG.episode_steps)]
    assert start == 10 and flags[-1] == (False, True) and not any(any(f) for f in flags[:-1])
    env.reset(options={"start": period.n_steps - 3})
    flags = [env.step(1)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]  # truncated at the period's end


def test_ruin_terminates() -> None:
    env = _env(_period([100.0, 100.0, 60.0, 60.0, 60.0]), CFG.model_copy(update={"ruin_equity": 0.7}))
    env.reset(options={"start": 0})
    assert env.step(2)[2:4] == (False, False)
    assert env.step(2)[2:4] == (True, False)  # equity 0.6 < 0.7


def test_pivot_accuracy_pays_the_position_held_at_the_pivot_bar() -> None:
    shaped = RewardConfig(pivot_weight=1.0)
    period = _period([100.0] * 10)
    low = np.full(period.n_steps, -1)
    low[6] = 2  # a swing low whose bar opened at step 2 is confirmed during step 6
    env = _env(dataclasses.replace(period, pivot_low_T=low), CFG, shaped)
    env.reset(options={"start": 0})
    got = [env.step(a)[4]["reward_pivot"] for a in (1, 1, 2, 1, 1, 1, 0, 1)]
    assert got == [0, 0, 0, 0, 0, 0, 1, 0]  # long at the low's bar: +1, paid at confirmation only
    env.reset(options={"start": 3})  # the pivot bar lies before this episode: nothing to pay
    assert [env.step(2)[4]["reward_pivot"] for _ in range(5)] == [0] * 5


def test_stable_baselines3_dqn_trains_on_it_unchanged() -> None:
    from stable_baselines3 import DQN

    setup = small_setup()
    env = TradingEnv(setup.builder, trading_period(setup, CFG), CFG.model_copy(update={"episode_steps": 120}))
    model = DQN(
        "MlpPolicy",
        env,
        learning_starts=64,
        buffer_size=1000,
        batch_size=32,
        train_freq=4,
        target_update_interval=100,
        policy_kwargs={"net_arch": [16]},
        seed=0,
        device="cpu",
    )
    before = [p.detach().clone() for p in model.q_net.parameters()]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny net: extra threads only fight over the shared cores
    try:
        model.learn(total_timesteps=300)
    finally:
        torch.set_num_threads(threads)
    assert model.num_timesteps == 300
    assert any(
        not np.allclose(a.numpy(), b.detach().numpy()) for a, b in zip(before, model.q_net.parameters(), strict=True)
    )
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert int(action) in (0, 1, 2)


def test_held_positions_keep_a_position_for_its_minimum_holding_time() -> None:
    wanted = np.array([-1, 0, 1, 0], np.int8)
    position = np.array([1, 1, 0, -1], np.int8)
    held = np.array([1, 3, 0, 2], np.int64)
    np.testing.assert_array_equal(held_positions(wanted, position, held, 1), wanted)  # 1: no minimum
    np.testing.assert_array_equal(held_positions(wanted, position, held, 3), [1, 0, 1, -1])


def test_minimum_holding_time_in_the_env_and_the_agent_backtest() -> None:
    """An agent flipping every step trades only every ``min_hold_steps`` steps, and its backtest records that."""
    setup = small_setup()
    cfg = CFG.model_copy(update={"min_hold_steps": 3})
    period = trading_period(setup, cfg)
    env = TradingEnv(setup.builder, period, cfg)
    env.reset(options={"start": 0})
    positions = [int(env.step(2 if k % 2 == 0 else 0)[4]["position"]) for k in range(9)]
    assert positions == [1, 1, 1, -1, -1, -1, 1, 1, 1]

    def flipper(obs: np.ndarray) -> np.ndarray:
        return np.where(obs[:, -ACCOUNT_DIM] > 0, 0, 2)  # always ask for the other side

    free = backtest_policy(setup.builder, period, flipper, CFG)
    held = backtest_policy(setup.builder, period, flipper, cfg)
    changes = [int(np.count_nonzero(np.diff(r.steps["position"].to_numpy()[:-1]))) for r in (free, held)]
    assert changes[0] == period.n_steps - 1  # unconstrained: a reversal every step
    assert changes[1] == (period.n_steps - 1) // 3  # held: one every 3 steps
