"""The Gymnasium trading environment, and the batched episode core it shares with the vector env.

Glossary of one step (clock step ``i`` at time ``t_i``; see :mod:`rltrade.env.prices`):

* **observation** at ``t_i``: the market state ``BatchStateBuilder.gather(t_i)`` (``layout.size`` floats)
  followed by the account block (``features.account``, ``ACCOUNT_DIM`` floats), float32;
* **action** (``Discrete(3)``): the target position, **0 = short, 1 = flat, 2 = long**;
* **fill**: the order fills at ``P_i``, strictly after ``t_i`` (the next traded bar's open after the
  latency), paying fee, half spread and impact on the change (:mod:`rltrade.env.fills`);
* **reward**: :func:`rltrade.env.reward.compute_reward` over the hold from ``P_i`` to ``P_{i+1}``;
* **next observation** at ``t_{i+1}``.

Episodes start at a uniformly drawn step of the period (``reset(seed=...)`` seeds the draw) with equity 1
and no position, and run ``episode_steps`` decisions: ``truncated`` at that length or at the end of the
period, ``terminated`` on ruin (equity below ``ruin_equity``). ``info`` holds ``t_idx`` (the clock step of
the returned observation), ``equity``, ``position``, ``fees_paid`` (this episode, in starting equity) and
each reward factor as ``reward_<name>``. The replay stores ``t_idx`` and the account block (the last
``ACCOUNT_DIM`` values of the observation) instead of states: ``ClockStateSource(builder, period.clock)``
gathers them back.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from rltrade.config import EnvConfig, RewardConfig
from rltrade.env.fills import AccountBook, CostModel, held_positions, position_log_return
from rltrade.env.prices import PeriodData
from rltrade.env.reward import FACTOR_NAMES, RewardParts, compute_reward
from rltrade.features.account import ACCOUNT_DIM
from rltrade.features.state_batch import BatchStateBuilder

OBS_BOUND = float(np.finfo(np.float32).max)
"""Observation box bounds: every finite float32 is inside, so only NaN or inf fall out of the space."""
ACTION_POSITIONS = (-1, 0, 1)
"""Target position of each action: 0 → short, 1 → flat, 2 → long."""
N_ACTIONS = len(ACTION_POSITIONS)

I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]


class StepOutcome(NamedTuple):
    """What one batched step did, per episode ``[E]``."""

    parts: RewardParts
    terminated: npt.NDArray[np.bool_]
    truncated: npt.NDArray[np.bool_]
    t_idx: I64
    """Clock step the action was taken at."""
    next_t_idx: I64
    """Clock step of the state after the action (before any reset)."""


class EpisodeBatch:
    """``n_envs`` episodes over one period, stepped together with numpy; no Gymnasium API, no RNG.

    The caller chooses start steps (:meth:`begin`), reads observations (:meth:`observe`) and steps
    (:meth:`advance`). :class:`TradingEnv`, :class:`~rltrade.env.vector_env.VectorTradingEnv` and the
    backtest all run on it, so their fills, costs and rewards are the same code.
    """

    def __init__(
        self,
        builder: BatchStateBuilder,
        period: PeriodData,
        env_cfg: EnvConfig,
        reward_cfg: RewardConfig,
        n_envs: int,
        *,
        episode_steps: int | None = None,
    ) -> None:
        self.builder, self.period, self.env_cfg, self.reward_cfg = builder, period, env_cfg, reward_cfg
        self.n_envs = n_envs
        self.episode_steps = episode_steps if episode_steps is not None else env_cfg.episode_steps
        self.costs = CostModel.from_config(env_cfg)
        self.t_idx = np.zeros(n_envs, np.int64)
        self.start = np.zeros(n_envs, np.int64)
        self.book = AccountBook.zeros(n_envs)
        self.positions_EL = np.zeros((n_envs, max(1, min(self.episode_steps, period.n_steps))), np.int8)
        self._log_ruin = np.log(env_cfg.ruin_equity) if env_cfg.ruin_equity > 0 else -np.inf
        layout = builder.layout
        self._cnn = layout.block("cnn_predictions") if layout.has("cnn_predictions") else None
        self._cnn_flag = layout.flag_index("has_cnn_predictions") if self._cnn is not None else -1
        self._cnn_pred: npt.NDArray[np.float32] | None = None

    @property
    def obs_size(self) -> int:
        """The width of an observation: the market state and the account block."""
        return self.builder.size + ACCOUNT_DIM

    def begin(self, mask: npt.NDArray[np.bool_], start: I64) -> None:
        """Start new episodes at steps ``start[mask]``: flat, equity 1."""
        bad = mask & ((start < 0) | (start >= self.period.n_steps))
        if bad.any():
            raise ValueError(f"episode start {start[bad][0]} outside the period's steps [0, {self.period.n_steps})")
        self.start[mask] = start[mask]
        self.t_idx[mask] = start[mask]
        self.book.reset(mask)
        self.positions_EL[mask] = 0

    def states(self) -> F32:
        """Market states at the current steps, ``float32 [E, layout.size]``."""
        return self.builder.gather(self.period.clock.time_of(self.t_idx))

    def observe(self, states_EF: F32 | None = None) -> F32:
        """Observations ``[E, layout.size + ACCOUNT_DIM]`` at the current steps (``states_EF`` if already gathered)."""
        states = self.states() if states_EF is None else states_EF
        if self._cnn is not None:
            pred = states[:, self._cnn.slice].reshape(-1, *self._cnn.shape)
            self._cnn_pred = pred * states[:, self._cnn_flag, None, None]
        return np.concatenate([states, self.book.vectors(self.t_idx)], axis=1)

    def accounts(self) -> F32:
        """Account blocks ``[E, ACCOUNT_DIM]`` at the current steps."""
        return self.book.vectors(self.t_idx)

    def advance(self, action_E: npt.ArrayLike) -> StepOutcome:
        """Take actions ``action_E`` at the current steps, which must have been observed."""
        action = np.asarray(action_E).reshape(-1)
        if action.shape != (self.n_envs,) or not ((action == 0) | (action == 1) | (action == 2)).all():
            raise ValueError(f"actions must be {self.n_envs} values in {{0, 1, 2}} (short, flat, long), got {action}")
        per = self.period
        i = self.t_idx.copy()
        rows = np.arange(self.n_envs)
        new_pos = held_positions(
            (action - 1).astype(np.int8), self.book.position, i - self.book.entry_step, self.env_cfg.min_hold_steps
        )
        self.positions_EL[rows, i - self.start] = new_pos
        low, high = per.pivot_low_T[i], per.pivot_high_T[i]
        low_pos = np.where(low >= self.start, self.positions_EL[rows, np.maximum(low - self.start, 0)], 0)
        high_pos = np.where(high >= self.start, self.positions_EL[rows, np.maximum(high - self.start, 0)], 0)
        parts = compute_reward(
            position=new_pos,
            prev_position=self.book.position,
            log_ret=per.log_ret_T[i],
            carry=per.carry_T[i],
            vol=per.vol_T[i],
            vol_ref=None if per.vol_ref_T is None else per.vol_ref_T[i],
            regime=per.regime_T[i],
            cnn_pred_BTO=self._cnn_pred,
            pivot_low_position=low_pos,
            pivot_high_position=high_pos,
            costs=self.costs,
            cfg=self.reward_cfg,
        )
        mark_change, _ = position_log_return(
            new_pos, self.book.position, per.mark_log_ret_T[i], per.carry_T[i], self.costs
        )
        self.book.apply(new_pos, parts.pnl, mark_change, parts.cost, i)
        self.t_idx = i + 1
        terminated = self.book.log_equity < self._log_ruin
        ended = (self.t_idx - self.start >= self.episode_steps) | (self.t_idx >= per.n_steps)
        return StepOutcome(parts, terminated, ended & ~terminated, i, self.t_idx.copy())

    def infos(self, parts: RewardParts | None) -> dict[str, npt.NDArray[Any]]:
        """Per-episode info arrays: step, equity, position, fees paid and each reward factor."""
        out: dict[str, npt.NDArray[Any]] = {
            "t_idx": self.t_idx.copy(),
            "equity": np.exp(self.book.log_equity),
            "position": self.book.position.astype(np.int64),
            "fees_paid": self.book.fees_paid.copy(),
        }
        for name in FACTOR_NAMES:
            out[f"reward_{name}"] = getattr(parts, name) if parts is not None else np.zeros(self.n_envs)
        out["reward_total"] = parts.total if parts is not None else np.zeros(self.n_envs)
        return out


class TradingEnv(gym.Env[npt.NDArray[np.float32], np.int64]):
    """One trading episode at a time over a period (module docstring); usable by stable-baselines3 as is."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's class attribute

    def __init__(
        self,
        builder: BatchStateBuilder,
        period: PeriodData,
        env_cfg: EnvConfig = EnvConfig(),
        reward_cfg: RewardConfig = RewardConfig(),
    ) -> None:
        self.core = EpisodeBatch(builder, period, env_cfg, reward_cfg, 1)
        self.period = period
        size = self.core.obs_size
        self.observation_space = gym.spaces.Box(-OBS_BOUND, OBS_BOUND, (size,), np.float32)
        self.action_space = gym.spaces.Discrete(N_ACTIONS)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        """Start a new episode at a random step, or at ``options["start"]`` when given."""
        super().reset(seed=seed)
        if options is not None and "start" in options:
            start = int(options["start"])
        else:
            start = int(self.np_random.integers(0, self.period.n_steps))
        self.core.begin(np.ones(1, bool), np.array([start], np.int64))
        return self.core.observe()[0], _scalar(self.core.infos(None))

    def step(self, action: np.int64 | int) -> tuple[npt.NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        """Apply ``action`` for one decision; return gymnasium's (obs, reward, terminated, truncated, info)."""
        out = self.core.advance(np.array([int(action)]))
        obs = self.core.observe()[0]
        info = _scalar(self.core.infos(out.parts))
        return obs, float(out.parts.total[0]), bool(out.terminated[0]), bool(out.truncated[0]), info


def _scalar(infos: dict[str, npt.NDArray[Any]]) -> dict[str, Any]:
    return {k: v[0].item() for k, v in infos.items()}
