"""Oracles: the best short/flat/long action sequence over a period, by dynamic programming.

Both oracles maximise the final log equity of :func:`rltrade.training.backtest.backtest_actions` exactly:
starting flat, the position ``p_i ∈ {−1, 0, +1}`` decided at step ``i`` earns

    ``g_i(p_{i−1}, p_i) = position_log_return(p_i, p_{i−1}, x_i, carry_i)``
    (``s · x_i + log1p(−cost(|p_i − p_{i−1}|)) + [holds carry] · log1p(s · carry_i)``, :mod:`rltrade.env.fills`)

and the position still open after the last decision is closed at ``P_n``, paying
``log1p(−cost(|p_{n−1}|))``. Fills (``P_i`` after the latency), fee, half spread, impact and the short's
borrow or funding are the env's own (:class:`~rltrade.env.fills.CostModel`,
:func:`~rltrade.env.fills.position_log_return`, ``PeriodData.carry_T``), so nothing is approximated. The
objective splits into a per-step term of the position held (``g_i(p, p)``: the move and the carry) plus a
time-invariant switching cost (``log1p(−cost(|p − q|))``), and Viterbi over the three positions finds the
maximum in ``O(3 · 3 · n)``; ties keep the position already held, then prefer flat.

* :func:`oracle_actions` (**oracle**, perfect foresight): ``x_i`` is the realised fill-to-fill log return
  ``log(P_{i+1} / P_i)``. No action sequence on the period ends with more equity (up to float rounding),
  so it bounds every policy, learned or not, backtested on the same period with the same costs.
* :func:`expected_move_oracle_actions` (**expected-move oracle**, synthetic market with a planted signal):
  ``x_i`` is the planted expected move of the hold (:func:`expected_hold_moves`): what the lead-lag makes
  ETH's mid do between the two fills in expectation, with none of the noise and none of the regime drift.
  Its actions are then backtested on the realised prices. It knows the whole signal path at once (it plans
  across future announcements), so it is a reference for what the signal is worth after costs, not a bound:
  a lucky path can beat it, and its capture is quoted as a mean over many synthetic paths
  (``benchmarks/bench_oracle.py``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rltrade.config import EnvConfig
from rltrade.data.synthetic import SignalTruth
from rltrade.env.fills import CostModel, position_log_return
from rltrade.env.prices import PeriodData

Actions = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
POSITIONS = (-1, 0, 1)
"""The DP's states in action order: action ``k`` holds ``POSITIONS[k]``."""


def dp_positions(move_T: npt.ArrayLike, carry_T: npt.ArrayLike, costs: CostModel) -> tuple[Actions, float]:
    """Find the actions (0 short, 1 flat, 2 long) maximising the final log equity, and that maximum.

    Step ``i`` moves the price by ``move_T[i]`` (log) and a short pays ``carry_T[i]``; the account starts flat
    and is closed after the last step. The maximum is the log growth of equity after the final close.
    """
    move = np.asarray(move_T, dtype=np.float64)
    carry = np.asarray(carry_T, dtype=np.float64)
    n = move.size
    if n == 0 or carry.shape != move.shape:
        raise ValueError(f"need as many carries as moves (at least one step), got {carry.shape} and {move.shape}")
    if not (np.isfinite(move).all() and np.isfinite(carry).all()):
        raise ValueError("the moves and carries must be finite (a NaN price or carry has no optimal policy)")
    # Per-step gain of holding p over the step with no trade, computed by the env's own formula.
    hold_KT = [position_log_return(p, p, move, carry, costs)[0].tolist() for p in POSITIONS]
    switch_KK = [[float(np.log1p(-costs.cost_fraction(abs(p - q)))[()]) for p in POSITIONS] for q in POSITIONS]
    back = np.empty((n, 3), np.int8)
    value = list(switch_KK[1])  # from flat into each position at step 0
    back[0] = 1
    order = (1, 0, 2)  # tie-break after "keep": flat, then short, then long
    # Sequential by nature (each step's best depends on the last); three states keep it a few µs a step.
    for i in range(n):
        if i > 0:
            new = [0.0, 0.0, 0.0]
            for k in range(3):
                best_q, best_v = k, value[k] + switch_KK[k][k]
                for q in order:
                    v = value[q] + switch_KK[q][k]
                    if v > best_v:
                        best_q, best_v = q, v
                new[k] = best_v
                back[i, k] = best_q
            value = new
        for k in range(3):
            value[k] += hold_KT[k][i]
    final = [value[k] + switch_KK[k][1] for k in range(3)]
    k = max((1, 0, 2), key=lambda j: final[j])
    best = final[k]
    out = np.empty(n, np.int64)
    for i in range(n - 1, -1, -1):
        out[i] = k
        k = int(back[i, k])
    return out, best


def oracle_actions(period: PeriodData, env_cfg: EnvConfig) -> Actions:
    """Act as the perfect-foresight oracle (module docstring): the best actions on the period's realised fills."""
    actions, _ = dp_positions(period.log_ret_T, period.carry_T, CostModel.from_config(env_cfg))
    return actions


def expected_hold_moves(period: PeriodData, truth: SignalTruth) -> F64:
    """Sum the planted expected log move of each hold.

    That is ``Σ expected_log_ret[s]`` over the seconds ``s`` with ``fill_us_i < s ≤ fill_us_{i+1}`` (ETH's mid
    makes second ``s``'s move at the start of ``s``, so a hold from the fill at ``fill_us_i`` to the one at
    ``fill_us_{i+1}`` sees the seconds after the first up to the second). Seconds outside the signal table
    add nothing.
    """
    frame = truth.frame
    sec_us = frame["open_us"].to_numpy().astype(np.int64)
    cum = np.concatenate([[0.0], np.cumsum(frame["expected_log_ret"].to_numpy().astype(np.float64))])
    k = np.searchsorted(sec_us, period.fill_us_T[: period.n_steps + 1], side="right")
    return np.asarray(cum[k[1:]] - cum[k[:-1]], dtype=np.float64)


def expected_move_oracle_actions(period: PeriodData, truth: SignalTruth, env_cfg: EnvConfig) -> Actions:
    """Act as the expected-move oracle (module docstring): the best actions on the planted expected moves."""
    actions, _ = dp_positions(expected_hold_moves(period, truth), period.carry_T, CostModel.from_config(env_cfg))
    return actions
