"""Metrics on hand-made equity curves, against direct numpy formulas and hand values."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from rltrade.training.metrics import (
    compute_metrics,
    direction_accuracy,
    max_drawdown,
    sharpe,
    sortino,
    steps_per_year,
)
from rltrade.types import US_PER_MINUTE, US_PER_SECOND


def test_annualisation_is_a_365_25_day_year_of_steps() -> None:
    assert steps_per_year(US_PER_SECOND) == 31_557_600
    assert steps_per_year(US_PER_MINUTE) == 525_960


def test_sharpe_and_sortino_match_direct_formulas() -> None:
    rng = np.random.default_rng(3)
    r = rng.normal(2e-5, 1e-3, 5000)
    n = 525_960.0
    assert sharpe(r, n) == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(n))
    downside = np.sqrt(np.mean(np.where(r < 0, r, 0.0) ** 2))
    assert sortino(r, n) == pytest.approx(r.mean() / downside * np.sqrt(n))
    # Hand values: returns +10 %, -10 %, +10 %: mean 1/30, sd sqrt(1/75), downside sqrt(0.01 / 3).
    r3 = np.array([0.1, -0.1, 0.1])
    assert sharpe(r3, 4.0) == pytest.approx((1 / 30) / np.sqrt(1 / 75) * 2)
    assert sortino(r3, 4.0) == pytest.approx((1 / 30) / np.sqrt(0.01 / 3) * 2)
    assert sharpe(np.zeros(10), n) == 0.0 and sortino(np.full(10, 1e-4), n) == 0.0


def test_max_drawdown_by_hand() -> None:
    assert max_drawdown([1.0, 2.0, 1.0, 3.0, 1.5, 2.9]) == pytest.approx(0.5)
    assert max_drawdown([1.0, 1.1, 1.2]) == 0.0


def test_direction_accuracy_scores_only_steps_in_the_market_with_a_move() -> None:
    acc, n = direction_accuracy([1, 1, -1, 0, -1, 1], [0.1, -0.2, -0.1, 0.5, 0.0, 0.3])
    assert (acc, n) == (pytest.approx(3 / 4), 4)


def test_compute_metrics_on_a_hand_made_curve() -> None:
    equity = np.array([100.0, 100.0, 110.0, 99.0, 99.0])
    position = np.array([1, 1, -1, 0])
    trades = pl.DataFrame({"pnl": [10.0, -1.0]})
    m = compute_metrics(
        equity_T=equity,
        position_T=position,
        log_ret_T=[0.0, 0.1, 0.05, 0.2],
        trades=trades,
        fees_paid=0.3,
        step_us=US_PER_MINUTE,
        position_fraction=0.5,
    )
    assert m["total_return"] == pytest.approx(-0.01)
    assert m["max_drawdown"] == pytest.approx(0.1)
    r = equity[1:] / equity[:-1] - 1
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(525_960))
    assert m["turnover"] == pytest.approx(0.5 * (1 + 0 + 2 + 1))  # enter, hold, reverse, close
    assert m["turnover_per_day"] == pytest.approx(2.0 / (4 / 1440))
    assert (m["exposure"], m["n_trades"], m["win_rate"]) == (0.75, 2, 0.5)
    assert (m["direction_accuracy"], m["direction_steps"]) == (pytest.approx(0.5), 2)
    json.dumps(m)
    with pytest.raises(ValueError, match="needs 5 values"):
        compute_metrics(
            equity_T=equity[:-1],
            position_T=position,
            log_ret_T=[0.0] * 4,
            trades=trades,
            fees_paid=0.0,
            step_us=US_PER_SECOND,
            position_fraction=1.0,
        )
