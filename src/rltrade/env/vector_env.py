"""``E`` trading episodes stepped at once: one batched state gather and numpy accounting per step.

:class:`VectorTradingEnv` is a Gymnasium ``VectorEnv`` with **same-step autoreset**: when episode ``e``
ends, the observation returned for it is already the first one of its next episode. Sub-env ``e`` draws
its start steps from its own generator, seeded like ``TradingEnv.reset(seed=seed + e)``, so its episodes
are exactly those of an independent :class:`~rltrade.env.trading_env.TradingEnv` reset with that seed and
reset again after each episode (tested).

Besides the per-env reward factors, equity, position and fees, ``infos`` carries under :data:`STEP_RECORD`
what a replay needs to store a transition without states, as a typed
:class:`~rltrade.features.account.StepRecord`: the step and account block each action was taken on, the
action, reward and episode ends, and the state the action led to *before* any reset (the transition's next
state, also for the last step of an episode). ``infos["t_idx"]`` and the observation's last ``ACCOUNT_DIM``
values are the state returned (after any reset).
"""

from __future__ import annotations

from typing import Any, Final

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode

from rltrade.config import EnvConfig, RewardConfig
from rltrade.env.prices import PeriodData
from rltrade.env.trading_env import N_ACTIONS, OBS_BOUND, EpisodeBatch
from rltrade.features.account import StepRecord
from rltrade.features.state_batch import BatchStateBuilder

F32 = npt.NDArray[np.float32]

STEP_RECORD: Final = "step_record"
"""The ``infos`` key of each step's :class:`~rltrade.features.account.StepRecord`."""


class VectorTradingEnv(gym.vector.VectorEnv[F32, npt.NDArray[np.int64], npt.NDArray[Any]]):
    """``num_envs`` episodes over one period (module docstring)."""

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP}  # noqa: RUF012 - gymnasium's attribute

    def __init__(
        self,
        builder: BatchStateBuilder,
        period: PeriodData,
        num_envs: int,
        env_cfg: EnvConfig = EnvConfig(),
        reward_cfg: RewardConfig = RewardConfig(),
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be ≥ 1, got {num_envs}")
        self.core = EpisodeBatch(builder, period, env_cfg, reward_cfg, num_envs)
        self.period = period
        self.num_envs = num_envs
        size = self.core.obs_size
        self.single_observation_space = gym.spaces.Box(-OBS_BOUND, OBS_BOUND, (size,), np.float32)
        self.single_action_space = gym.spaces.Discrete(N_ACTIONS)
        self.observation_space = gym.spaces.Box(-OBS_BOUND, OBS_BOUND, (num_envs, size), np.float32)
        self.action_space = gym.spaces.MultiDiscrete(np.full(num_envs, N_ACTIONS))
        self._rngs: list[np.random.Generator] = [seeding.np_random(None)[0] for _ in range(num_envs)]

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[F32, dict[str, Any]]:
        """Start every episode; sub-env ``e`` is seeded with ``seed + e`` (or ``seed[e]``)."""
        if seed is not None:
            seeds = [seed + e for e in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} envs")
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        everyone = np.ones(self.num_envs, bool)
        self.core.begin(everyone, self._draw_starts(everyone))
        return self.core.observe(), self.core.infos(None)

    def step(
        self, actions: npt.ArrayLike
    ) -> tuple[F32, npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.bool_], dict[str, Any]]:
        """Step every sub-env with its action; one that ends restarts at once (gymnasium's same-step autoreset)."""
        prev_account = self.core.accounts()
        out = self.core.advance(actions)
        infos: dict[str, Any] = dict(self.core.infos(out.parts))
        infos[STEP_RECORD] = StepRecord(
            out.t_idx,
            prev_account,
            np.asarray(actions, dtype=np.int64),
            out.parts.total.astype(np.float32),
            out.terminated,
            out.truncated,
            out.next_t_idx,
            self.core.accounts(),
        )
        done = out.terminated | out.truncated
        if done.any():
            self.core.begin(done, self._draw_starts(done))
        infos["t_idx"] = self.core.t_idx.copy()
        return self.core.observe(), out.parts.total, out.terminated, out.truncated, infos

    def _draw_starts(self, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        n = self.period.n_steps
        return np.array([int(self._rngs[e].integers(0, n)) if m else 0 for e, m in enumerate(mask)], np.int64)
