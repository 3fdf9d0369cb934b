"""The reward calculator: every factor of SPEC §2.5, separately weighted, in one pure function.

:func:`compute_reward` takes the arrays of a batch of steps (one value per episode or per time step) and
returns the weighted total and each factor, which the env logs separately (``info["reward_<name>"]``).
With ``p`` the position held over step ``i`` (``-1, 0, +1``), ``s = position_fraction · p`` and ``r`` the
step's log return between fills (``log(P_{i+1} / P_i)``):

============  =====================================================================================
factor        value at step ``i``
============  =====================================================================================
pnl           log equity change after every cost: ``s · r + log1p(−cost) + [holds carry] · log1p(s · carry)``
              (:func:`rltrade.env.fills.position_log_return`): realised and unrealised PnL after fees
direction     ``sign(p) · sign(r)``: +1 on the right side of the step's move, −1 on the wrong side, 0 flat
regime        ``p · d`` with ``d`` = +1 in a trend-up regime, −1 in a trend-down one, 0 otherwise (the
              regime label of the last 1m bar closed at ``t_i``)
volatility    additive mode (``volatility_mode="additive"``): ``clip(pnl / vol_i, ±vol_clip)``, PnL in units of
              the recent per-step volatility, added with its weight. Multiplier mode (the original
              design's form): ``m_i = clip(vol_ref_i / vol_i, 1/vol_clip, vol_clip) ** volatility_weight``,
              which multiplies the PnL term instead: calm stretches (recent volatility below its slow
              reference) weigh a unit of PnL up, turbulent ones down, as the volatility scaling of
              Zhang, Zohren & Roberts 2020 ("Deep RL for Trading") sizes positions by ``σ_tgt / σ_t``
cnn           ``p ·`` mean over the *confident* timeframes of ``sign(P(up) − P(down))``, where a timeframe is
              confident when ``max(P(down), P(up)) ≥ cnn_confidence``; 0 when none is, or when the state
              has no CNN predictions (block absent or its flag off)
pivot         ``p_low − p_high``: ``p_low`` is the position held at the bar of a swing low confirmed during
              the step (bought the bottom: +1, sold it: −1), ``p_high`` the same for a swing high; 0 when
              no pivot is confirmed during the step. Paid at confirmation, never before
turnover      ``−|p − p_prev|``: units of position changed at the step's fill (a reversal counts 2). A
              training-only brake on churn: the pnl factor already pays the real costs, this makes the
              learner demand an edge beyond them before switching (the Q-value noise of a trained DQN is
              larger than one step's fee, so without it a greedy policy flips on noise)
============  =====================================================================================

``total = Σ weight · factor`` (additive mode), or ``pnl_weight · pnl · m + Σ weight · factor`` over the
other factors (multiplier mode; weight 0 makes ``m = 1``, the PnL-only reward). Every input belongs to the
step's own data up to the ``t+1`` mark (``P_{i+1}``, pivots confirmed by ``t_{i+1}``), or to the state at
``t_i`` (regime, CNN): nothing later.
Properties (tested with hypothesis): costs never increase the total; with zero costs a mirrored price
path (log returns negated) gives the negated PnL, and the multiplier (a function of squared returns
only) is the same on both paths; the PnL factors of an episode sum to the log of its
final equity ratio. The default :class:`~rltrade.config.RewardConfig` is PnL-only, the mode every
evaluation uses; reported performance is always equity after costs, never the shaped reward.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from rltrade.config import RewardConfig
from rltrade.env.fills import CostModel, position_log_return
from rltrade.types import Regime

FACTOR_NAMES: Final = ("pnl", "direction", "regime", "volatility", "cnn", "pivot", "turnover")

MULTI_FACTOR_REWARD: Final[dict[str, float | str]] = {
    "pnl_weight": 10_000.0,
    "volatility_mode": "multiplier",
    "volatility_weight": 1.0,
    "direction_weight": 0.1,
    "regime_weight": 0.05,
    "cnn_weight": 0.05,
    "pivot_weight": 0.5,
}
"""The multi-factor reward of the ``full`` preset (``reward`` section), every factor of SPEC §2.5 on.

Scale: ``pnl_weight`` 10,000 puts PnL in basis points of equity, ~1-3 per step on a 1-second clock at
the synthetic market's volatility, so the Q-values stay O(1-100). Volatility multiplies that PnL by
``vol_ref / vol`` (clipped to ``[1/5, 5]``, exponent 1: the full scaling). The other factors are ±1 per
step (pivot: per confirmed pivot) and are weighted as hints, well under one step's PnL: direction 0.1
(the sign of every step's move), regime 0.05 and CNN agreement 0.05 (held-position biases the PnL
already pays for when they are right), pivot accuracy 0.5 (rare: a few per hour on 1m pivots). Turnover
stays 0 (the costs are in the PnL). Whether this beats PnL-only is measured, not assumed:
``benchmarks/bench_reward_ablation.py`` decides on validation returns, and a tie keeps PnL-only.
"""
F64 = npt.NDArray[np.float64]


class RewardParts(NamedTuple):
    """The weighted total, each unweighted factor (:data:`FACTOR_NAMES`) and the costs paid, all ``[B]``."""

    total: F64
    pnl: F64
    direction: F64
    regime: F64
    volatility: F64
    cnn: F64
    pivot: F64
    turnover: F64
    cost: F64
    """Fraction of equity paid in trading costs this step (fee, spread, impact; not a reward factor)."""

    def factors(self) -> dict[str, F64]:
        """Return the reward factors by name, in ``FACTOR_NAMES`` order."""
        return {name: getattr(self, name) for name in FACTOR_NAMES}


def compute_reward(
    *,
    position: npt.ArrayLike,
    prev_position: npt.ArrayLike,
    log_ret: npt.ArrayLike,
    carry: npt.ArrayLike,
    vol: npt.ArrayLike,
    regime: npt.ArrayLike,
    cnn_pred_BTO: npt.ArrayLike | None,
    pivot_low_position: npt.ArrayLike,
    pivot_high_position: npt.ArrayLike,
    costs: CostModel,
    cfg: RewardConfig,
    vol_ref: npt.ArrayLike | None = None,
) -> RewardParts:
    """Reward factors of a batch of steps (see the module docstring); a pure function of its arguments.

    ``cnn_pred_BTO`` is the state's ``cnn_predictions`` block ``[B, timeframes, 4]`` (P(down), P(flat),
    P(up), pivot distance) with rows zeroed where the block is flagged off, or None when the layout has
    no such block.
    """
    p = np.asarray(position, dtype=np.float64)
    r = np.asarray(log_ret, dtype=np.float64)
    pnl, cost = position_log_return(p, prev_position, r, carry, costs)
    side = np.sign(p)
    direction = side * np.sign(r)
    reg = np.asarray(regime)
    trend = np.where(reg == Regime.TREND_UP, 1.0, np.where(reg == Regime.TREND_DOWN, -1.0, 0.0))
    vol_i = np.asarray(vol, dtype=np.float64)
    if cfg.volatility_mode == "multiplier":
        if vol_ref is None:
            raise ValueError("volatility_mode='multiplier' needs vol_ref, the slow reference volatility of each step")
        ratio = np.clip(np.asarray(vol_ref, dtype=np.float64) / vol_i, 1.0 / cfg.vol_clip, cfg.vol_clip)
        volatility = ratio**cfg.volatility_weight
        pnl_term = cfg.pnl_weight * pnl * volatility
        volatility_term = np.zeros_like(pnl)
    else:
        volatility = np.clip(pnl / vol_i, -cfg.vol_clip, cfg.vol_clip)
        pnl_term = cfg.pnl_weight * pnl
        volatility_term = cfg.volatility_weight * volatility
    if cnn_pred_BTO is None:
        cnn = np.zeros_like(p)
    else:
        pred = np.asarray(cnn_pred_BTO, dtype=np.float64)
        down, up = pred[..., 0], pred[..., 2]
        confident = np.maximum(down, up) >= cfg.cnn_confidence
        view = np.where(confident, np.sign(up - down), 0.0).sum(axis=-1)
        cnn = side * view / np.maximum(confident.sum(axis=-1), 1)
    pivot = np.sign(np.asarray(pivot_low_position, np.float64)) - np.sign(np.asarray(pivot_high_position, np.float64))
    turnover = -np.abs(p - np.asarray(prev_position, dtype=np.float64))
    total = (
        pnl_term
        + cfg.direction_weight * direction
        + cfg.regime_weight * side * trend
        + volatility_term
        + cfg.cnn_weight * cnn
        + cfg.pivot_weight * pivot
        + cfg.turnover_weight * turnover
    )
    return RewardParts(total, pnl, direction, side * trend, volatility, cnn, pivot, turnover, cost)
