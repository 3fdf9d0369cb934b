"""Performance metrics of a backtest, always on equity after every cost (never on the shaped reward).

Annualisation for a 24/7 market: a year is 365.25 days of ``steps_per_year = 365.25 · 86,400 s / step``
steps (31,557,600 one-second steps; 525,960 one-minute steps). With ``r_i = E_{i+1} / E_i − 1`` the simple
return of step ``i`` of the equity curve ``E_0 .. E_n``:

* ``sharpe  = mean(r) / std(r, ddof=1) · sqrt(steps_per_year)`` (risk-free rate 0; 0 when ``std = 0``);
* ``sortino = mean(r) / sqrt(mean(min(r, 0)²)) · sqrt(steps_per_year)`` (target 0, downside deviation over
  all steps; 0 when no step loses);
* ``max_drawdown = max_i (1 − E_i / max_{j ≤ i} E_j)``, a positive fraction;
* ``total_return = E_n / E_0 − 1``;
* ``turnover``: equity traded, ``Σ position_fraction · |p_i − p_{i−1}|`` including the final liquidation,
  also per day;
* ``exposure``: share of steps with a position (time in market);
* ``direction_accuracy``: among steps in the market whose return is not zero, the share where
  ``sign(position) = sign(next step's return)``, the return being ``log(P_{i+1} / P_i)`` that the position
  decided at step ``i`` earns; reported beside ``exposure`` and the number of steps scored;
* ``n_trades``, ``win_rate`` (closed trades with ``pnl > 0``), ``fees_paid`` and ``initial_equity`` (quote
  currency).
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
import numpy.typing as npt
import polars as pl

from rltrade.types import US_PER_DAY, US_PER_SECOND

SECONDS_PER_YEAR = 365.25 * 86_400
F64 = npt.NDArray[np.float64]


class BacktestMetrics(TypedDict):
    """The metrics of one backtest (module docstring), JSON-ready as they are written to ``eval/metrics.json``."""

    total_return: float
    sharpe: float
    sortino: float
    max_drawdown: float
    turnover: float
    turnover_per_day: float
    fees_paid: float
    n_trades: int
    win_rate: float
    exposure: float
    direction_accuracy: float
    direction_steps: int
    n_steps: int
    days: float
    steps_per_year: float
    annualisation: str
    """How Sharpe and Sortino are annualised, in words."""
    initial_equity: float
    """Equity at the start (``E_0``, quote currency)."""


def steps_per_year(step_us: int) -> float:
    """Count the steps of ``step_us`` in a 365.25-day year of a market that never closes."""
    return SECONDS_PER_YEAR * US_PER_SECOND / step_us


def simple_returns(equity_T: npt.ArrayLike) -> F64:
    """Return the simple return of each step, ``e[i + 1] / e[i] - 1``, from an equity curve."""
    e = np.asarray(equity_T, dtype=np.float64)
    return e[1:] / e[:-1] - 1.0


def sharpe(returns_T: npt.ArrayLike, periods_per_year: float) -> float:
    """Return the annualised Sharpe ratio of per-step returns (sample std; 0 for fewer than 2 steps or none)."""
    r = np.asarray(returns_T, dtype=np.float64)
    if r.size < 2:
        return 0.0
    sd = float(np.std(r, ddof=1))
    return 0.0 if sd == 0.0 else float(np.mean(r)) / sd * float(np.sqrt(periods_per_year))


def sortino(returns_T: npt.ArrayLike, periods_per_year: float) -> float:
    """Return the annualised Sortino ratio of per-step returns (downside deviation about 0; 0 when none)."""
    r = np.asarray(returns_T, dtype=np.float64)
    if r.size == 0:
        return 0.0
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)))
    return 0.0 if downside == 0.0 else float(np.mean(r)) / downside * float(np.sqrt(periods_per_year))


def max_drawdown(equity_T: npt.ArrayLike) -> float:
    """Return the largest drop of equity from its running peak, as a fraction of the peak (0 when empty)."""
    e = np.asarray(equity_T, dtype=np.float64)
    return float(np.max(1.0 - e / np.maximum.accumulate(e))) if e.size else 0.0


def direction_accuracy(position_T: npt.ArrayLike, log_ret_T: npt.ArrayLike) -> tuple[float, int]:
    """(share of scored steps on the right side, number of scored steps: in the market, return ≠ 0)."""
    p = np.sign(np.asarray(position_T, dtype=np.float64))
    s = np.sign(np.asarray(log_ret_T, dtype=np.float64))
    scored = (p != 0) & (s != 0)
    n = int(scored.sum())
    return (float(np.mean(p[scored] == s[scored])) if n else 0.0), n


def compute_metrics(
    *,
    equity_T: npt.ArrayLike,
    position_T: npt.ArrayLike,
    log_ret_T: npt.ArrayLike,
    trades: pl.DataFrame,
    fees_paid: float,
    step_us: int,
    position_fraction: float,
) -> BacktestMetrics:
    """All metrics of the module docstring; ``equity_T`` has one more value than the per-step arrays."""
    e = np.asarray(equity_T, dtype=np.float64)
    p = np.asarray(position_T, dtype=np.float64)
    if e.size != p.size + 1:
        raise ValueError(f"equity_T needs {p.size + 1} values for {p.size} steps, got {e.size}")
    r = simple_returns(e)
    per_year = steps_per_year(step_us)
    moves = np.abs(np.diff(np.concatenate([[0.0], p, [0.0]])))
    days = p.size * step_us / US_PER_DAY
    accuracy, scored = direction_accuracy(p, log_ret_T)
    pnl = trades["pnl"].to_numpy() if trades.height else np.zeros(0)
    return BacktestMetrics(
        total_return=float(e[-1] / e[0] - 1.0),
        sharpe=sharpe(r, per_year),
        sortino=sortino(r, per_year),
        max_drawdown=max_drawdown(e),
        turnover=float(position_fraction * moves.sum()),
        turnover_per_day=float(position_fraction * moves.sum() / days) if days > 0 else 0.0,
        fees_paid=float(fees_paid),
        n_trades=int(trades.height),
        win_rate=float(np.mean(pnl > 0)) if pnl.size else 0.0,
        exposure=float(np.mean(p != 0)) if p.size else 0.0,
        direction_accuracy=accuracy,
        direction_steps=scored,
        n_steps=int(p.size),
        days=float(days),
        steps_per_year=per_year,
        annualisation=f"sqrt({per_year:.0f} steps/year: 365.25 days of {step_us / US_PER_SECOND:g} s steps, 24/7)",
        initial_equity=float(e[0]),
    )
