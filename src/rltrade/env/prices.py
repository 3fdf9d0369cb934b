"""Per-step arrays of a period, precomputed with numpy so that stepping the env is cheap.

On the decision clock (step ``i`` at ``t_i = start + i · step``; 1 s by default) with the traded symbol's
bars of the clock's timeframe:

* ``fill_price_T[i]`` (``P_i``): where an order decided on the state at ``t_i`` fills, the open of the
  first *traded* bar (``is_filled`` false: it holds a trade) opening at or after ``t_i + latency``. With 1 s
  bars and a latency under a second that is the first trade at or after ``t_{i+1}``, always strictly after
  ``t_i``. ``fill_us_T[i]`` is that bar's open time.
* ``mark_T[i]`` (``m_i``): the decision-time mark, the close of the last bar closed by ``t_i`` (the last
  trade before ``t_i``, carried through quiet bars); it values the account block the observation shows.
* ``log_ret_T[i] = log(P_{i+1} / P_i)``: what a position decided at ``t_i`` earns (``mark_log_ret_T`` the
  same on marks).
* ``carry_T[i]``: a short's carry over ``(t_i, t_{i+1}]`` (:func:`rltrade.env.fills.short_carry`).
* ``vol_T[i]``: root of the exponentially weighted mean of ``log_ret_T[j]²`` over ``j < i`` (half-life
  ``vol_halflife_steps``), at least ``vol_floor``; ``vol_T[0] = vol_floor``. ``vol_ref_T[i]``: the same
  with the slow half-life ``vol_ref_halflife_steps``, the reference of the volatility multiplier.
* ``regime_T[i]``: the regime label (``rltrade.types.Regime``, -1 unknown) of the last 1m bar closed by
  ``t_i``, from the features' regime block and classifier.
* ``pivot_low_T[i]`` / ``pivot_high_T[i]``: for the last swing low / high of level ``pivot_level`` confirmed
  in ``(t_i, t_{i+1}]``, the clock step of the pivot bar's open (the decision in force then); -1 when no
  pivot of that kind is confirmed during the step or its bar opened before the period.

Everything the reward of step ``i`` reads is known by the time ``P_{i+1}`` prints: the "t+1 mark".
A period is tradeable for its first ``n_steps`` decisions: each needs ``P_{i+1}``, and the state after the
last decision, at ``t_{n_steps}``, must lie on the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import polars as pl

from rltrade.config import EnvConfig, RewardConfig
from rltrade.data.align import BarArrays, last_closed_index
from rltrade.data.importers import read_funding
from rltrade.data.splits import TimeRange
from rltrade.env.fills import short_carry
from rltrade.features.clock import DecisionClock
from rltrade.features.market_features import MarketFeatures
from rltrade.features.pivots_batch import PivotKind, PivotSet
from rltrade.features.regime import REGIME_UNKNOWN, classify_regimes

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class PeriodError(ValueError):
    """The period cannot be traded with the data given (no marks, no fills); the message says why."""


@dataclass(frozen=True, eq=False)
class PeriodData:
    """The per-step arrays of one period (module docstring).

    ``T`` arrays hold ``n_steps`` values, the price and time arrays ``n_steps + 1``.
    """

    clock: DecisionClock
    n_steps: int
    fill_price_T: F64
    fill_us_T: I64
    mark_T: F64
    log_ret_T: F64
    mark_log_ret_T: F64
    carry_T: F64
    vol_T: F64
    regime_T: npt.NDArray[np.int8]
    pivot_low_T: I64
    pivot_high_T: I64
    vol_ref_T: F64 | None = None
    """The slow reference volatility of the reward's multiplier mode (None: a period built without it)."""

    @property
    def time_us_T(self) -> I64:
        """Decision times ``t_0 .. t_{n_steps}``."""
        return self.clock.time_of(np.arange(self.n_steps + 1))


def build_period(
    features: MarketFeatures,
    period: TimeRange,
    env_cfg: EnvConfig,
    reward_cfg: RewardConfig = RewardConfig(),
    *,
    funding: pl.DataFrame | None = None,
) -> PeriodData:
    """Build the per-step arrays of ``period`` on ``env_cfg``'s clock, from the traded symbol's bars in ``features``.

    ``funding`` (:func:`load_funding`: the ``env_cfg.funding_file`` table, read once by the caller) replaces
    the constant borrow rate by real funding; it is required when ``env_cfg.funding_file`` is set, so no
    period silently falls back to the borrow rate and none re-reads the file.
    """
    if funding is None and env_cfg.funding_file is not None:
        raise ValueError(
            f"env.funding_file is {env_cfg.funding_file} but no funding table was passed; "
            "read it once with load_funding(env_cfg) and pass funding="
        )
    key = ("eth", env_cfg.step)
    if key not in features.series:
        have = sorted(f"{r}_{tf.value}" for r, tf in features.series)
        raise PeriodError(
            f"the env fills on the traded symbol's {env_cfg.step.value} bars, but the features hold {have}; "
            f"use a layout with eth_{env_cfg.step.value} bars or set env.step to one of those timeframes"
        )
    prices = price_period(features.series[key].bars, period, env_cfg, funding)
    t_T = prices.time_us_T
    return replace(
        prices,
        vol_T=ewm_volatility(prices.log_ret_T, reward_cfg.vol_halflife_steps, reward_cfg.vol_floor),
        regime_T=_regimes(features, t_T[:-1]),
        pivot_low_T=_pivot_steps(features.pivots, PivotKind.LOW, reward_cfg.pivot_level, prices.clock, t_T),
        pivot_high_T=_pivot_steps(features.pivots, PivotKind.HIGH, reward_cfg.pivot_level, prices.clock, t_T),
        vol_ref_T=ewm_volatility(prices.log_ret_T, reward_cfg.vol_ref_halflife_steps, reward_cfg.vol_floor),
    )


def price_period(
    bars: BarArrays, period: TimeRange, env_cfg: EnvConfig, funding: pl.DataFrame | None = None
) -> PeriodData:
    """Build the fills, marks and carry of ``period`` on the traded symbol's ``bars``, without features.

    What a backtest and the oracles read: volatility is zero, regimes and pivots are unknown (−1), so a reward
    factor built on them is off. :func:`build_period` adds them from the features.
    """
    clock = DecisionClock.over(period, env_cfg.step.us)
    n, fill_price, fill_us, mark = execution_prices(bars, clock, env_cfg.latency_us)
    t_T = clock.time_of(np.arange(n + 1))
    return PeriodData(
        clock=clock,
        n_steps=n,
        fill_price_T=fill_price,
        fill_us_T=fill_us,
        mark_T=mark,
        log_ret_T=np.diff(np.log(fill_price)),
        mark_log_ret_T=np.diff(np.log(mark)),
        carry_T=short_carry(t_T, env_cfg, funding),
        vol_T=np.zeros(n),
        regime_T=np.full(n, -1, np.int8),
        pivot_low_T=np.full(n, -1, np.int64),
        pivot_high_T=np.full(n, -1, np.int64),
    )


def load_funding(env_cfg: EnvConfig) -> pl.DataFrame | None:
    """Read the ``env_cfg.funding_file`` table (:func:`rltrade.data.importers.read_funding`); None when unset."""
    return read_funding(env_cfg.funding_file) if env_cfg.funding_file is not None else None


class ExecutionPrices(NamedTuple):
    """Fills and marks of a clock's first ``n_steps`` decisions (``n_steps + 1`` values each)."""

    n_steps: int
    fill_price_T: F64
    fill_us_T: I64
    mark_T: F64


def execution_prices(bars: BarArrays, clock: DecisionClock, latency_us: int) -> ExecutionPrices:
    """Fill prices and decision-time marks (module docstring) of ``clock``'s steps on ``bars``."""
    t_T = clock.time_of(np.arange(clock.n_steps))
    traded = np.flatnonzero(~bars.is_filled_T)
    k_T = np.searchsorted(bars.open_us_T[traded], t_T + latency_us, side="left")
    has_fill = k_T < traded.size
    bar_T = traded[np.minimum(k_T, max(traded.size - 1, 0))] if traded.size else np.zeros_like(k_T)
    mark_idx = last_closed_index(bars, t_T)
    if mark_idx[0] < 0:
        raise PeriodError(
            f"no {bars.tf.value} bar has closed by the period start {t_T[0]} µs (first bar opens at "
            f"{bars.open_us_T[0] if bars.open_us_T.size else 'never'}): start the period after the data starts"
        )
    # Decisions 0..n-1 need fills at steps 0..n; the state after the last one sits at clock step n.
    missing = np.flatnonzero(~has_fill)
    n = min(clock.n_steps - 1, (int(missing[0]) if missing.size else clock.n_steps) - 1)
    if n < 1:
        raise PeriodError(
            f"the period from {t_T[0]} µs has fewer than 2 steps with a {bars.tf.value} trade after them "
            "(no fill price): the data ends too early for this period"
        )
    keep = slice(0, n + 1)
    return ExecutionPrices(
        n,
        bars.open_T[bar_T[keep]].astype(np.float64),
        bars.open_us_T[bar_T[keep]].astype(np.int64),
        bars.close_T[mark_idx[keep]].astype(np.float64),
    )


def ewm_volatility(log_ret_T: F64, halflife_steps: float, floor: float) -> F64:
    """``vol[i] = sqrt(EWM mean of log_ret[j]², j < i)`` (bias-corrected weights), floored; ``vol[0] = floor``."""
    if log_ret_T.size == 0:
        return np.zeros(0)
    var = pl.Series(log_ret_T**2).ewm_mean(half_life=halflife_steps, adjust=True).to_numpy()
    vol = np.concatenate([[0.0], np.sqrt(var[:-1])])
    floored: F64 = np.maximum(vol, floor)
    return floored


def _regimes(features: MarketFeatures, t_T: I64) -> npt.NDArray[np.int8]:
    if features.regime is None or features.regime_bars is None:
        return np.full(t_T.shape, REGIME_UNKNOWN, np.int8)
    labels = classify_regimes(features.regime.values_TF, features.regime.valid_T)
    idx = last_closed_index(features.regime_bars, t_T)
    return np.where(idx >= 0, labels[np.maximum(idx, 0)], REGIME_UNKNOWN).astype(np.int8)


def _pivot_steps(pivots: PivotSet | None, kind: PivotKind, level: int, clock: DecisionClock, t_T: I64) -> I64:
    n = t_T.size - 1
    out = np.full(n, -1, np.int64)
    if pivots is None or level >= pivots.levels:
        return out
    arr = pivots.of(kind, level)
    if arr.confirm_us_P.size == 0:
        return out
    # Pivots with t_i < confirm <= t_{i+1} are k[i] .. k[i+1]-1; keep the last one.
    k = np.searchsorted(arr.confirm_us_P, t_T, side="right")
    some = k[1:] > k[:-1]
    last = np.maximum(k[1:] - 1, 0)
    step = (arr.time_us_P[last] - clock.start_us) // clock.step_us
    out[some & (step >= 0)] = step[some & (step >= 0)]
    return out
