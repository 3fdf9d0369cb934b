"""n-step returns from vectorised episodes: per-step transitions in, n-step transitions out.

Glossary (Sutton & Barto ch. 7; the n-step target of Rainbow, Hessel et al. 2018):

- At each vectorised step every environment ``e`` reports ``s_t`` (time index and account), ``a_t``,
  ``r_t``, whether the episode *terminated* (a true end: no value after it) or was *truncated* (cut
  by a time limit or the end of the data: the value after it still counts), and ``s_{t+1}`` (the
  final observation when the episode ended, not the reset one).
- Each transition starting at ``s_t`` covers ``m`` steps: ``m = n`` inside an episode, fewer when the
  episode ends first. It carries ``R = Σ_{k<m} γ^k r_{t+k}``, the next state ``s_{t+m}`` and the
  bootstrap discount ``γ^m``, which is 0 when the episode terminated within those ``m`` steps. At a
  truncation the discount stays ``γ^m`` and the learner bootstraps from the final observation.
- A transition is emitted as soon as it is complete: the oldest pending step once ``n`` steps are
  pending, and every pending step when the episode ends (the flush).

Shape suffixes: ``E`` parallel environments, ``N`` the n pending steps per environment (oldest
first), ``K`` account features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from rltrade.agent.batches import Transitions
from rltrade.features.account import StepRecord

_NO_STEP = -1  # "no previous next-state" marker for the continuity check


class NStepAccumulator:
    """Turns per-step transitions of ``num_envs`` parallel episodes into n-step transitions.

    The account width ``K`` is taken from the first call to ``step`` (or from ``load_state_dict``).
    """

    def __init__(self, n: int, gamma: float, num_envs: int) -> None:
        if n < 1:
            raise ValueError(f"NStepAccumulator: n must be ≥ 1, got {n}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"NStepAccumulator: gamma must lie in [0, 1], got {gamma}")
        if num_envs < 1:
            raise ValueError(f"NStepAccumulator: num_envs must be ≥ 1, got {num_envs}")
        self.n, self.gamma, self.num_envs = int(n), float(gamma), int(num_envs)
        k = np.arange(self.n)
        lag_NN = k[:, None] - k[None, :]
        # _returns_NN[k, j] = γ^(k-j) for k ≥ j: rewards_EN @ _returns_NN gives, in column j, the
        # discounted sum of the rewards from pending step j to the newest.
        self._returns_NN = np.where(lag_NN >= 0, self.gamma ** np.maximum(lag_NN, 0), 0.0)
        self._account_dim: int | None = None
        self._t_idx_EN = np.zeros((self.num_envs, self.n), dtype=np.int64)
        self._action_EN = np.zeros((self.num_envs, self.n), dtype=np.int64)
        self._reward_EN = np.zeros((self.num_envs, self.n), dtype=np.float64)
        self._account_ENK = np.zeros((self.num_envs, self.n, 0), dtype=np.float32)
        self._count_E = np.zeros(self.num_envs, dtype=np.int64)
        self._expected_t_idx_E = np.full(self.num_envs, _NO_STEP, dtype=np.int64)

    def pending(self) -> np.ndarray:
        """Return the number of steps waiting in each environment's window (int64 ``[E]``)."""
        return self._count_E.copy()

    def clear(self) -> None:
        """Drop every pending step (e.g. when the environments are reset from outside)."""
        self._count_E[:] = 0
        self._expected_t_idx_E[:] = _NO_STEP

    def add(self, record: StepRecord, *, mask_E: npt.ArrayLike | None = None) -> Transitions:
        """Record one vectorised env step (:class:`~rltrade.features.account.StepRecord`); see :meth:`step`."""
        return self.step(*record, mask_E=mask_E)

    def step(
        self,
        t_idx_E: npt.ArrayLike,
        account_EK: npt.ArrayLike,
        action_E: npt.ArrayLike,
        reward_E: npt.ArrayLike,
        terminated_E: npt.ArrayLike,
        truncated_E: npt.ArrayLike,
        next_t_idx_E: npt.ArrayLike,
        next_account_EK: npt.ArrayLike,
        *,
        mask_E: npt.ArrayLike | None = None,
    ) -> Transitions:
        """Record one vectorised step and return the n-step transitions it completes.

        ``mask_E`` (bool) excludes environments whose step is not a transition, such as the reset
        step of gymnasium's next-step autoreset; their other values are ignored. Within an episode,
        ``t_idx_E`` must continue the previous step's ``next_t_idx_E`` (checked: an off-by-one at
        autoreset is the classic n-step bug). Transitions come out ordered by environment, then time.
        """
        e_count = self.num_envs
        t_idx = _int_vector("t_idx_E", t_idx_E, e_count)
        next_t_idx = _int_vector("next_t_idx_E", next_t_idx_E, e_count)
        action = _int_vector("action_E", action_E, e_count)
        reward = np.asarray(reward_E, dtype=np.float64)
        terminated = _bool_vector("terminated_E", terminated_E, e_count)
        truncated = _bool_vector("truncated_E", truncated_E, e_count)
        valid = np.ones(e_count, dtype=bool) if mask_E is None else _bool_vector("mask_E", mask_E, e_count)
        if reward.shape != (e_count,):
            raise ValueError(f"reward_E: expected shape ({e_count},), got {reward.shape}")
        account = self._account_matrix("account_EK", account_EK)
        next_account = self._account_matrix("next_account_EK", next_account_EK)
        _check_finite("reward_E", reward, valid)
        _check_finite("account_EK", account, valid)
        _check_finite("next_account_EK", next_account, valid)
        expected = self._expected_t_idx_E
        broken = valid & (expected != _NO_STEP) & (t_idx != expected)
        if np.any(broken):
            e = int(np.flatnonzero(broken)[0])
            raise ValueError(
                f"env {e}: time index {t_idx[e]} does not continue the episode, whose last next "
                f"time index was {expected[e]}; pass the final observation as next state when an "
                "episode ends and mask out reset-only steps (mask_E)"
            )

        envs = np.flatnonzero(valid)
        slot = self._count_E[envs]
        self._t_idx_EN[envs, slot] = t_idx[envs]
        self._account_ENK[envs, slot] = account[envs]
        self._action_EN[envs, slot] = action[envs]
        self._reward_EN[envs, slot] = reward[envs]
        self._count_E[envs] += 1

        done = valid & (terminated | truncated)
        full = valid & ~done & (self._count_E == self.n)
        j_N = np.arange(self.n)
        live_EN = j_N[None, :] < self._count_E[:, None]
        emit_EN = (done[:, None] & live_EN) | (full[:, None] & (j_N[None, :] == 0))
        e_idx, j_idx = np.nonzero(emit_EN)

        # Slots past a window's count hold stale steps: mask them out of the sums.
        returns_EN = np.where(live_EN, self._reward_EN, 0.0) @ self._returns_NN
        steps = self._count_E[e_idx] - j_idx  # m for each emitted transition
        discount = np.where(terminated[e_idx], 0.0, self.gamma ** steps.astype(np.float64))
        out = Transitions(
            t_idx_B=self._t_idx_EN[e_idx, j_idx],
            account_BK=self._account_ENK[e_idx, j_idx],
            action_B=self._action_EN[e_idx, j_idx],
            reward_B=returns_EN[e_idx, j_idx].astype(np.float32),
            discount_B=discount.astype(np.float32),
            next_t_idx_B=next_t_idx[e_idx],
            next_account_BK=next_account[e_idx],
        )

        # Slide full windows by one (oldest step out), empty the windows of finished episodes.
        if np.any(full):
            for buf in (self._t_idx_EN, self._account_ENK, self._action_EN, self._reward_EN):
                buf[full, :-1] = buf[full, 1:]
            self._count_E[full] -= 1
        self._count_E[done] = 0
        self._expected_t_idx_E[envs] = next_t_idx[envs]
        self._expected_t_idx_E[done] = _NO_STEP
        return out

    def state_dict(self) -> dict[str, Any]:
        """Pending windows as tensors and plain numbers (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "n": self.n,
            "gamma": self.gamma,
            "num_envs": self.num_envs,
            "account_dim": -1 if self._account_dim is None else self._account_dim,
            "t_idx": torch.from_numpy(self._t_idx_EN.copy()),
            "account": torch.from_numpy(self._account_ENK.copy()),
            "action": torch.from_numpy(self._action_EN.copy()),
            "reward": torch.from_numpy(self._reward_EN.copy()),
            "count": torch.from_numpy(self._count_E.copy()),
            "expected_t_idx": torch.from_numpy(self._expected_t_idx_E.copy()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore pending windows saved by ``state_dict`` into an accumulator built the same way."""
        mine = {"n": self.n, "gamma": self.gamma, "num_envs": self.num_envs}
        theirs = {key: state.get(key) for key in mine}
        if theirs != mine:
            raise ValueError(f"NStepAccumulator state was saved with {theirs}, this accumulator has {mine}")
        k = int(state["account_dim"])
        self._account_dim = None if k < 0 else k
        self._t_idx_EN = _numpy(state["t_idx"], np.int64, (self.num_envs, self.n))
        self._action_EN = _numpy(state["action"], np.int64, (self.num_envs, self.n))
        self._reward_EN = _numpy(state["reward"], np.float64, (self.num_envs, self.n))
        self._account_ENK = _numpy(state["account"], np.float32, (self.num_envs, self.n, max(k, 0)))
        self._count_E = _numpy(state["count"], np.int64, (self.num_envs,))
        self._expected_t_idx_E = _numpy(state["expected_t_idx"], np.int64, (self.num_envs,))

    def _account_matrix(self, name: str, value: npt.ArrayLike) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] != self.num_envs:
            raise ValueError(f"{name}: expected shape ({self.num_envs}, K), got {arr.shape}")
        if self._account_dim is None:
            self._account_dim = int(arr.shape[1])
            self._account_ENK = np.zeros((self.num_envs, self.n, self._account_dim), dtype=np.float32)
        elif arr.shape[1] != self._account_dim:
            raise ValueError(f"{name}: expected {self._account_dim} account features, got {arr.shape[1]}")
        return arr


def _int_vector(name: str, value: npt.ArrayLike, size: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != (size,):
        raise ValueError(f"{name}: expected shape ({size},), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name}: expected integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _bool_vector(name: str, value: npt.ArrayLike, size: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != (size,):
        raise ValueError(f"{name}: expected shape ({size},), got {arr.shape}")
    if arr.dtype != np.bool_:
        raise TypeError(f"{name}: expected booleans, got dtype {arr.dtype}")
    return arr


def _check_finite(name: str, arr: np.ndarray, valid_E: np.ndarray) -> None:
    bad = ~np.isfinite(arr).reshape(arr.shape[0], -1).all(axis=1) & valid_E
    if np.any(bad):
        raise ValueError(f"{name}: non-finite value for env {int(np.flatnonzero(bad)[0])}")


def _numpy(value: Any, dtype: type[np.generic], shape: tuple[int, ...]) -> np.ndarray:
    arr = value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if arr.shape != shape:
        raise ValueError(f"NStepAccumulator state: expected an array of shape {shape}, got {arr.shape}")
    return np.array(arr, dtype=dtype)
