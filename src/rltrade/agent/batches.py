"""Typed batches of the agent layer, in one home, and the protocol through which states are gathered.

The replay never stores state vectors (a full state is 15,588 float32 = 62 KB). A transition holds the
*time index* of its state, i.e. a row of the base clock that a ``StateSource`` turns back into the
state vector on demand, plus the small per-step values (account, action, n-step return, discount).

Shape suffixes: ``B`` batch, ``K`` account features, ``T`` time steps, ``F`` state features.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


class Transitions(NamedTuple):
    """A batch of n-step transitions ``(s_t, a_t, R_t, γ_t, s_{t+m})``, as ``NStepAccumulator`` emits them.

    ``reward_B`` is the n-step return ``R = Σ_{k<m} γ^k r_{t+k}`` and ``discount_B`` the factor on the
    bootstrap value: ``γ^m``, or 0 when the episode terminated within the ``m`` steps (so "done" is
    folded into the discount). ``m ≤ n`` is shorter only at the end of an episode.
    """

    t_idx_B: np.ndarray  # int64: time index of s_t
    account_BK: np.ndarray  # float32: account part of s_t
    action_B: np.ndarray  # int64: a_t
    reward_B: np.ndarray  # float32: n-step return
    discount_B: np.ndarray  # float32: γ^m, 0 at termination
    next_t_idx_B: np.ndarray  # int64: time index of s_{t+m}
    next_account_BK: np.ndarray  # float32: account part of s_{t+m}


class ReplaySample(NamedTuple):
    """A batch sampled from ``PrioritizedReplay``: transitions plus importance weights and slots.

    ``weight_B`` are the importance-sampling weights ``(N·P(i))^-β / max_j (N·P(j))^-β`` (all 1 in
    uniform mode); ``tree_idx_B`` are the buffer slots to pass back to ``update_priorities``.
    """

    t_idx_B: np.ndarray  # int64
    account_BK: np.ndarray  # float32
    action_B: np.ndarray  # int64
    reward_B: np.ndarray  # float32
    discount_B: np.ndarray  # float32
    next_t_idx_B: np.ndarray  # int64
    next_account_BK: np.ndarray  # float32
    weight_B: np.ndarray  # float32
    tree_idx_B: np.ndarray  # int64


@runtime_checkable
class StateSource(Protocol):
    """Anything that turns time indices into market-state vectors (the batch state builder)."""

    def gather(self, t_idx_B: np.ndarray) -> np.ndarray:
        """States at time indices ``t_idx_B`` (int64 ``[B]``), as float32 ``[B, F]``.

        A new array on every call, which the caller owns: the learner standardises its batches in place.
        """
        ...


class ArrayStateSource:
    """A ``StateSource`` over a materialised ``[T, F]`` array: for tests and small experiments only."""

    def __init__(self, states_TF: npt.ArrayLike) -> None:
        states = np.asarray(states_TF)
        if states.ndim != 2:
            raise ValueError(f"ArrayStateSource: states must be 2-D [T, F], got shape {states.shape}")
        if states.dtype != np.float32:
            raise TypeError(f"ArrayStateSource: states must be float32, got {states.dtype}")
        self._states_TF = states

    @property
    def num_steps(self) -> int:
        """The number of clock steps held (T)."""
        return int(self._states_TF.shape[0])

    @property
    def num_features(self) -> int:
        """The width of a state row (F)."""
        return int(self._states_TF.shape[1])

    def gather(self, t_idx_B: np.ndarray) -> np.ndarray:
        """Return the states ``[B, F]`` at time indices ``t_idx_B`` (1-D integers in ``[0, num_steps)``)."""
        idx = np.asarray(t_idx_B)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"gather: need 1-D integer time indices, got {idx.dtype} shape {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_steps):
            raise IndexError(
                f"gather: time indices must lie in [0, {self.num_steps}), got range [{idx.min()}, {idx.max()}]"
            )
        states: np.ndarray = self._states_TF[idx]
        return states
