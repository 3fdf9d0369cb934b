"""The vector env: same trajectories as independent scalar envs, and what a replay needs per transition."""

from __future__ import annotations

import numpy as np

from rltrade.config import EnvConfig, RewardConfig
from rltrade.env.trading_env import TradingEnv
from rltrade.env.vector_env import STEP_RECORD, VectorTradingEnv
from rltrade.features.account import ACCOUNT_DIM, StepRecord
from rltrade.features.clock import ClockStateSource
from tests.unit.env.market_cases import small_setup, trading_period

CFG = EnvConfig(episode_steps=25, ruin_equity=0.995, taker_fee=0.002)
SHAPED = RewardConfig(direction_weight=0.1, regime_weight=0.1, volatility_weight=0.01, pivot_weight=0.1)


def test_vector_env_equals_independent_scalar_envs_with_the_same_seeds() -> None:
    setup = small_setup()
    period = trading_period(setup, CFG, SHAPED)
    n_envs, seed = 4, 7
    vec = VectorTradingEnv(setup.builder, period, n_envs, CFG, SHAPED)
    scalars = [TradingEnv(setup.builder, period, CFG, SHAPED) for _ in range(n_envs)]
    obs_v, _ = vec.reset(seed=seed)
    obs_s = np.stack([env.reset(seed=seed + e)[0] for e, env in enumerate(scalars)])
    np.testing.assert_array_equal(obs_v, obs_s)
    rng = np.random.default_rng(1)
    ends = terminations = 0
    for _ in range(120):
        actions = rng.integers(0, 3, n_envs)
        obs_v, rew_v, term_v, trunc_v, info_v = vec.step(actions)
        for e, env in enumerate(scalars):
            obs, rew, term, trunc, info = env.step(int(actions[e]))
            assert (rew_v[e], term_v[e], trunc_v[e]) == (rew, term, trunc)
            for key in ("equity", "position", "fees_paid", "reward_pnl", "reward_direction", "reward_pivot"):
                assert info_v[key][e] == info[key], key
            if term or trunc:
                obs, _ = env.reset()
                ends += 1
                terminations += int(term)
            np.testing.assert_array_equal(obs_v[e], obs)
    assert ends > 10 and terminations > 0  # autoresets by length and by ruin were both exercised


def test_infos_make_step_records_without_states() -> None:
    setup = small_setup()
    period = trading_period(setup, CFG)
    vec = VectorTradingEnv(setup.builder, period, 3, CFG)
    source = ClockStateSource(setup.builder, period.clock)
    obs, info = vec.reset(seed=0)
    records: list[StepRecord] = []
    for _ in range(CFG.episode_steps):
        actions = np.array([0, 1, 2])
        t_before, account_before = info["t_idx"].copy(), obs[:, -ACCOUNT_DIM:].copy()
        next_obs, reward, term, trunc, info = vec.step(actions)
        record: StepRecord = info[STEP_RECORD]
        np.testing.assert_array_equal(record.t_idx_E, t_before)
        np.testing.assert_array_equal(record.account_EK, account_before)
        np.testing.assert_array_equal(record.action_E, actions)
        np.testing.assert_array_equal(record.reward_E, reward.astype(np.float32))
        np.testing.assert_array_equal(record.terminated_E, term)
        np.testing.assert_array_equal(record.truncated_E, trunc)
        records.append(record)
        done = term | trunc
        # Not done: the returned observation is the next state; done: it is the new episode's first state.
        np.testing.assert_array_equal(record.next_t_idx_E[~done], info["t_idx"][~done])
        np.testing.assert_array_equal(record.next_account_EK[~done], next_obs[~done, -ACCOUNT_DIM:])
        assert np.all(next_obs[done, -ACCOUNT_DIM:] == 0)
        obs = next_obs
    last = records[-1]
    assert last.truncated_E.all() and all((r.next_t_idx_E == r.t_idx_E + 1).all() for r in records)
    # The state a record points to is gathered back from its step index.
    states = source.gather(last.next_t_idx_E)
    np.testing.assert_array_equal(states, setup.builder.gather(period.clock.time_of(last.next_t_idx_E)))
    assert last.next_account_EK[:, 0].tolist() == [-1.0, 0.0, 1.0]
