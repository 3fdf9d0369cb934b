"""Results per market regime: every policy's backtest split by the regime label of each decision step.

Decision step ``i`` (decided at ``t_i``, earning ``r_i = E_{i+1} / E_i − 1`` of the equity curve, the last step
including the final liquidation) is labelled by two sources:

* ``"classifier"`` (always): ``PeriodData.regime_T[i]``, the rule-based classifier of
  :mod:`rltrade.features.regime` on the last 1m bar closed by ``t_i``: what a trader could know at ``t_i``.
  On real data it is the only label, and it is an estimate, not a ground truth.
* ``"true"`` (synthetic market only): the regime the generator was in at ``t_i``, the row of
  ``MarketFrames.extras["regimes"]`` (1m: ``open_us → regime``) whose minute holds ``t_i``.

Steps whose label is unknown (classifier warm-up, or a time the true table does not cover) form an
``UNKNOWN`` row when there are any. Per (source, regime, policy) a row holds:

* ``n_steps``, ``share_of_steps`` (of the period's decision steps);
* ``log_return`` ``Σ log(1 + r_i)`` over the regime's steps and ``return_contribution`` ``exp(log_return) − 1``:
  what those steps alone compounded to (the contributions of all regimes multiply to the total return);
* ``sharpe`` of the regime's steps as one series, annualised like the whole period
  (:func:`rltrade.training.metrics.sharpe`);
* ``exposure`` (share of the regime's steps in the market), ``direction_accuracy`` and ``direction_steps``
  (:func:`rltrade.training.metrics.direction_accuracy` on the regime's steps).

All four regimes get a row for every policy and source, with ``n_steps = 0`` and zero metrics where a regime
does not occur, so a missing regime is visible rather than silently absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, TypedDict

import numpy as np
import numpy.typing as npt
import polars as pl

from rltrade.env.prices import PeriodData
from rltrade.features.regime import REGIME_UNKNOWN
from rltrade.training.backtest import BacktestResult
from rltrade.training.metrics import direction_accuracy, sharpe, simple_returns
from rltrade.types import Regime, Timeframe

I8 = npt.NDArray[np.int8]
SOURCES: Final = ("true", "classifier")


class RegimeRow(TypedDict):
    """One policy's figures over the steps of one regime (module docstring)."""

    source: str
    """``true`` (the synthetic generator's regimes) or ``classifier``."""
    regime: str
    policy: str
    n_steps: int
    share_of_steps: float
    log_return: float
    return_contribution: float
    sharpe: float
    exposure: float
    direction_accuracy: float
    direction_steps: int


def regime_name(label: int) -> str:
    """Return the regime's name for ``label`` (``UNKNOWN`` for :data:`REGIME_UNKNOWN`)."""
    return "UNKNOWN" if label == REGIME_UNKNOWN else Regime(label).name


def true_regime_labels(regimes: Mapping[Timeframe, pl.DataFrame], time_us_T: npt.ArrayLike) -> I8:
    """Look up the generator's regime at each time: the row of its 1m table (else its finest one) holding the time.

    Times before the first row or after the last row's interval get :data:`REGIME_UNKNOWN`.
    """
    if not regimes:
        raise ValueError("the true-regime table is empty: no timeframe recorded")
    tf = Timeframe.M1 if Timeframe.M1 in regimes else min(regimes, key=lambda t: t.us)
    table = regimes[tf]
    open_us = table["open_us"].to_numpy().astype(np.int64)
    label = table["regime"].to_numpy().astype(np.int8)
    t = np.asarray(time_us_T, dtype=np.int64)
    k = np.searchsorted(open_us, t, side="right") - 1
    inside = (k >= 0) & (t < open_us[np.maximum(k, 0)] + tf.us)
    return np.where(inside, label[np.maximum(k, 0)], REGIME_UNKNOWN).astype(np.int8)


def regime_rows(
    results: Mapping[str, BacktestResult],
    period: PeriodData,
    *,
    true_regimes: Mapping[Timeframe, pl.DataFrame] | None = None,
) -> list[RegimeRow]:
    """Per-regime rows (module docstring) of every policy in ``results``, all backtested on ``period``."""
    n = period.n_steps
    labels: dict[str, I8] = {}
    if true_regimes is not None:
        labels["true"] = true_regime_labels(true_regimes, period.time_us_T[:n])
    labels["classifier"] = np.asarray(period.regime_T[:n], dtype=np.int8)
    rows: list[RegimeRow] = []
    for source, label_T in labels.items():
        present = [int(x) for x in Regime]
        if (label_T == REGIME_UNKNOWN).any():
            present.append(REGIME_UNKNOWN)
        for name, result in results.items():
            equity = result.equity_T
            if equity.size != n + 1:
                raise ValueError(f"policy {name!r} has {equity.size - 1} steps, the period {n}")
            per_year = result.metrics["steps_per_year"]
            r_T = simple_returns(equity)
            position_T = result.steps["position"].to_numpy()[:n]
            for regime in present:
                mask = label_T == regime
                rows.append(
                    _row(source, regime, name, r_T[mask], position_T[mask], period.log_ret_T[mask], n, per_year)
                )
    return rows


def _row(
    source: str,
    regime: int,
    policy: str,
    r_T: npt.NDArray[np.float64],
    position_T: npt.NDArray[np.int8],
    log_ret_T: npt.NDArray[np.float64],
    n_total: int,
    per_year: float,
) -> RegimeRow:
    log_return = float(np.sum(np.log1p(r_T)))
    accuracy, scored = direction_accuracy(position_T, log_ret_T)
    return RegimeRow(
        source=source,
        regime=regime_name(regime),
        policy=policy,
        n_steps=int(r_T.size),
        share_of_steps=r_T.size / n_total if n_total else 0.0,
        log_return=log_return,
        return_contribution=float(np.expm1(log_return)),
        sharpe=sharpe(r_T, per_year),
        exposure=float(np.mean(position_T != 0)) if position_T.size else 0.0,
        direction_accuracy=accuracy,
        direction_steps=scored,
    )
