"""Baseline action sequences over a period, backtested with the same fills and costs as the agent.

Each returns actions ``[n_steps]`` (0 short, 1 flat, 2 long) for :func:`rltrade.training.backtest.backtest_actions`:

* ``flat``: never in the market (total return exactly 0).
* ``buy_and_hold``: long from the first step to the end (one entry, closed at the end).
* ``random``: a uniformly drawn action every step from the given generator (seeded; it trades a lot).
* ``momentum``: the sign of the last ``k``-step return of the decision-time marks,
  ``sign(log(m_i / m_{i−k}))`` (known at ``t_i``); flat for the first ``k`` steps and when it is 0.
* ``threshold_oracle`` (synthetic market with a planted signal only): the previous "oracle", a fee-aware
  threshold rule that knows the planted lead-lag exactly (``data.synthetic.SignalTruth``). At step ``i``
  its *known expected move* is ``M_i = Σ expected_log_ret[s]`` over the seconds ``s`` with
  ``fill_us_i < s ≤ t_i + (lag_s − 1) s``: the part of ETH's mid moves after the fill that BTC's 1 s
  bars closed by ``t_i`` have already announced
  (BTC's shock of second ``s − lag_s`` is in its bar closing at ``s − lag_s + 1``). With ``c`` the round-trip
  log cost per unit of position (``CostModel.round_trip``: two fills of fee, half spread and impact):
  go long when ``M_i > c``, short when ``M_i < −c``, otherwise keep the position unless it is on the wrong
  side of ``M_i`` (``p · M_i < 0`` → flat). Entering pays ``c`` over the round trip, so it enters only when
  the announced move covers it; an open position is kept while the announced move does not go against it.
  It ignores the regime drift (``drift_log_ret``: not announced by BTC) and uses only what BTC's true mid
  announced by ``t_i``; it is not a global optimum over the whole path, and a learner can beat it. The
  report's oracles are now :mod:`rltrade.training.oracle`'s dynamic programs; this rule is kept as a
  comparison (``benchmarks/bench_oracle.py``) and as one more policy the perfect-foresight oracle must bound.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rltrade.config import EnvConfig
from rltrade.data.synthetic import SignalTruth
from rltrade.env.fills import CostModel
from rltrade.env.prices import PeriodData
from rltrade.types import US_PER_SECOND

Actions = npt.NDArray[np.int64]


def flat_actions(period: PeriodData) -> Actions:
    """Stay flat at every step (action 1)."""
    return np.ones(period.n_steps, np.int64)


def buy_and_hold_actions(period: PeriodData) -> Actions:
    """Hold long at every step (action 2)."""
    return np.full(period.n_steps, 2, np.int64)


def random_actions(period: PeriodData, rng: np.random.Generator) -> Actions:
    """Draw a uniform action at every step from ``rng``."""
    return rng.integers(0, 3, period.n_steps).astype(np.int64)


def momentum_actions(period: PeriodData, k: int = 60) -> Actions:
    """Follow the sign of the mark's log move over the last ``k`` steps.

    Step ``i`` sees the marks of steps ``i - k`` and ``i``: long after a rise, short after a fall, flat when
    they are equal or ``i < k``.
    """
    if k < 1:
        raise ValueError(f"momentum lookback k must be ≥ 1 step, got {k}")
    log_m = np.log(period.mark_T[: period.n_steps])
    signal = np.zeros(period.n_steps)
    signal[k:] = np.sign(log_m[k:] - log_m[:-k])
    return (signal + 1).astype(np.int64)


def known_expected_move(period: PeriodData, truth: SignalTruth) -> npt.NDArray[np.float64]:
    """``M_i`` of the threshold oracle (module docstring) for every decision step."""
    frame = truth.frame
    sec_us = frame["open_us"].to_numpy().astype(np.int64)
    cum = np.concatenate([[0.0], np.cumsum(frame["expected_log_ret"].to_numpy().astype(np.float64))])
    t = period.time_us_T[: period.n_steps]
    horizon = t + (truth.lag_s - 1) * US_PER_SECOND
    lo = np.searchsorted(sec_us, period.fill_us_T[: period.n_steps], side="right")
    hi = np.searchsorted(sec_us, horizon, side="right")
    return np.where(hi > lo, cum[hi] - cum[np.minimum(lo, hi)], 0.0)


def threshold_oracle_actions(period: PeriodData, truth: SignalTruth, env_cfg: EnvConfig) -> Actions:
    """Act by the fee-aware threshold rule of the module docstring (the previous oracle)."""
    move = known_expected_move(period, truth)
    threshold = CostModel.from_config(env_cfg).round_trip
    out = np.empty(period.n_steps, np.int64)
    position = 0
    # Sequential on purpose: whether to keep a position depends on the one held (a baseline, not a hot path).
    for i, m in enumerate(move.tolist()):
        if m > threshold:
            position = 1
        elif m < -threshold:
            position = -1
        elif position * m < 0:
            position = 0
        out[i] = position + 1
    return out
