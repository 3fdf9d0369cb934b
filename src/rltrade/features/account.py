"""The account block and the per-step record, shared by the env and the agent.

The env fills them and the agent stores and reads them, so neither has to import the other.

The observation the agent sees is ``concat(market state [layout.size], account [ACCOUNT_DIM])``.
Account features (float32), in order:

==  =====================  =====================================================================
 #  name                   value
==  =====================  =====================================================================
 0  position               current target position: -1 short, 0 flat, +1 long
 1  unrealised_return      log return of the open position since entry, after the entry costs
 2  time_in_trade          ``log1p(steps in the current position) / log1p(3600)``
 3  episode_return         log equity change since the episode started (after all costs)
 4  drawdown               ``log(equity / running max equity)`` within the episode, ≤ 0
==  =====================  =====================================================================
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

ACCOUNT_FEATURE_NAMES: Final = ("position", "unrealised_return", "time_in_trade", "episode_return", "drawdown")
ACCOUNT_DIM: Final = len(ACCOUNT_FEATURE_NAMES)
TIME_IN_TRADE_SCALE: Final = float(np.log1p(3600.0))


def account_vector(
    position: float, unrealised_return: float, steps_in_trade: int, episode_return: float, drawdown: float
) -> npt.NDArray[np.float32]:
    """Build the account block ``float32 [ACCOUNT_DIM]`` from its parts (see the module docstring)."""
    return np.array(
        [position, unrealised_return, np.log1p(steps_in_trade) / TIME_IN_TRADE_SCALE, episode_return, drawdown],
        dtype=np.float32,
    )


class StepRecord(NamedTuple):
    """One vectorised environment step as the learner stores it: time indices, not states (states are gathered).

    Per environment ``e`` (suffix ``E``; ``K`` account features): ``t_idx_E`` indexes the decision clock of the
    period the env runs on and ``account_EK`` is the account block seen with the state at ``t_idx``; the
    action taken, its reward, whether the episode terminated or was truncated, and ``next_*`` the state the
    action led to, *before* any reset (also for the last step of an episode). Built by
    :class:`rltrade.env.vector_env.VectorTradingEnv` and consumed by :class:`rltrade.agent.nstep.NStepAccumulator`.
    """

    t_idx_E: npt.NDArray[np.int64]
    account_EK: npt.NDArray[np.float32]
    action_E: npt.NDArray[np.int64]
    reward_E: npt.NDArray[np.float32]
    terminated_E: npt.NDArray[np.bool_]
    truncated_E: npt.NDArray[np.bool_]
    next_t_idx_E: npt.NDArray[np.int64]
    next_account_EK: npt.NDArray[np.float32]
