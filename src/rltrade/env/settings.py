"""Configuration of the trading environment and of the reward calculator (frozen pydantic models).

``EnvConfig`` holds the market mechanics (decision clock, latency, fees, spread, impact, borrow,
position size, episode length, ruin); ``RewardConfig`` the weight of each reward factor of SPEC §2.5
and the factors' few parameters. The default ``RewardConfig`` is PnL-only: the mode every evaluation
uses. Both live in :mod:`rltrade.config` (the ``env`` and ``reward`` sections of ``Config``); this module
re-exports them for the env layer.
"""

from __future__ import annotations

from rltrade.config import REAL_ETH_HALF_SPREAD_BPS, EnvConfig, RewardConfig

__all__ = ["REAL_ETH_HALF_SPREAD_BPS", "EnvConfig", "RewardConfig"]
