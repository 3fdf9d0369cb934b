"""stable-baselines3's DQN as the benchmarks' external baseline: one construction, one evaluation loop.

The learner is SB3's ``DQN`` with its default MLP on rltrade's own ``TradingEnv`` (one env, the run's state,
costs and reward), so the only difference from rltrade's agent is the learner itself. Its greedy policy is
backtested with :func:`rltrade.training.backtest.backtest_policy`, as rltrade's agents are.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rltrade.config import Config
from rltrade.env.prices import PeriodData
from rltrade.training.backtest import backtest_policy
from rltrade.training.pipeline import Prepared

if TYPE_CHECKING:
    from stable_baselines3 import DQN


def sb3_dqn(cfg: Config, prep: Prepared, *, buffer_size: int = 50_000, optimize_memory_usage: bool = True) -> DQN:
    """SB3 DQN on ``prep``'s training range with ``cfg``'s env, reward, seed and ``learning_starts``.

    The defaults are the scorecard's comparison: a 50k buffer that stores each observation once
    (``optimize_memory_usage``); SB3's own default buffer (1M full states) would not fit in memory here.
    """
    from stable_baselines3 import DQN

    from rltrade.env.trading_env import TradingEnv

    env = TradingEnv(prep.builder, prep.train_period, cfg.env, cfg.reward)
    kwargs: dict[str, Any] = {"handle_timeout_termination": False} if optimize_memory_usage else {}
    return DQN(
        "MlpPolicy",
        env,
        seed=cfg.seed,
        learning_starts=cfg.agent.learning_starts,
        buffer_size=buffer_size,
        optimize_memory_usage=optimize_memory_usage,
        replay_buffer_kwargs=kwargs,
        verbose=0,
        device="cpu",
    )


def greedy(model: DQN) -> Callable[[np.ndarray], np.ndarray]:
    """The model's deterministic (greedy) policy, as ``backtest_policy`` calls it."""
    return lambda obs: np.asarray(model.predict(obs, deterministic=True)[0])


@dataclass
class Sb3Curve:
    """An SB3 run's evaluations: ``(wall s, env steps, return)`` each, and the weights of the best one."""

    points: list[tuple[float, int, float]] = field(default_factory=list)
    best_state: dict[str, Any] | None = None
    best_return: float = float("-inf")


def learn_evaluated(
    model: DQN,
    cfg: Config,
    prep: Prepared,
    period: PeriodData,
    *,
    total_env_steps: int,
    every_env_steps: int,
    exclude_eval_time: bool = False,
    wall_cap_s: float | None = None,
) -> Sb3Curve:
    """Train ``model``, backtesting its greedy policy on ``period`` every ``every_env_steps`` env steps.

    Keeps the policy weights of the best evaluation (the checkpoint choice rltrade's loop makes). Wall time
    counts the backtests unless ``exclude_eval_time``; training stops at ``total_env_steps`` or, with
    ``wall_cap_s``, once that much (evaluation-free, if excluded) time has passed.
    """
    from stable_baselines3.common.callbacks import BaseCallback

    curve = Sb3Curve()
    t0 = time.perf_counter()
    spent = {"eval_s": 0.0}
    policy = greedy(model)

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % every_env_steps == 0:
                e0 = time.perf_counter()
                ret = float(backtest_policy(prep.builder, period, policy, cfg.env).metrics["total_return"])
                if ret > curve.best_return:
                    curve.best_return, curve.best_state = ret, copy.deepcopy(model.policy.state_dict())
                if exclude_eval_time:
                    curve.points.append((e0 - t0 - spent["eval_s"], self.num_timesteps, ret))
                    spent["eval_s"] += time.perf_counter() - e0
                else:
                    curve.points.append((time.perf_counter() - t0, self.num_timesteps, ret))
            elapsed = time.perf_counter() - t0 - spent["eval_s"]
            return wall_cap_s is None or elapsed < wall_cap_s

    model.learn(total_timesteps=total_env_steps, callback=Evaluate())
    return curve
