"""Per-regime results: true-regime lookup by time, rows by hand on a hand-made period, the synthetic market's tables."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

from rltrade.config import EnvConfig
from rltrade.training.backtest import backtest_actions
from rltrade.training.baselines import buy_and_hold_actions, flat_actions, momentum_actions
from rltrade.training.metrics import direction_accuracy, sharpe, simple_returns
from rltrade.training.regimes import regime_rows, true_regime_labels
from rltrade.types import US_PER_MINUTE, US_PER_SECOND, Regime, Timeframe
from tests.unit.env.market_cases import T0_US, period_from_prices, small_setup, trading_period

CFG = EnvConfig(taker_fee=0.001, half_spread_bps=0.0, impact_bps=0.0, borrow_annual_rate=0.0)
UP, DOWN, RANGE, VOLATILE = (int(r) for r in Regime)


def minute_table(labels: list[int]) -> dict[Timeframe, pl.DataFrame]:
    return {
        Timeframe.M1: pl.DataFrame(
            {"open_us": T0_US + US_PER_MINUTE * np.arange(len(labels)), "regime": np.asarray(labels, np.int8)}
        )
    }


def test_true_label_is_the_minute_holding_the_time() -> None:
    table = minute_table([UP, VOLATILE, DOWN])
    times = T0_US + np.array([-1, 0, 59 * US_PER_SECOND, US_PER_MINUTE, 2 * US_PER_MINUTE + 5, 3 * US_PER_MINUTE])
    np.testing.assert_array_equal(true_regime_labels(table, times), [-1, UP, UP, VOLATILE, DOWN, -1])
    with pytest.raises(ValueError, match="empty"):
        true_regime_labels({}, times)


def test_rows_by_hand() -> None:
    prices = [100.0, 101.0, 99.0, 99.0, 102.0, 103.0, 101.0]
    # Steps 0-1 RANGE, 2-3 TREND_UP, 4 unknown (classifier warm-up), 5 VOLATILE.
    period = dataclasses.replace(
        period_from_prices(prices), regime_T=np.array([RANGE, RANGE, UP, UP, -1, VOLATILE], np.int8)
    )
    results = {
        "long": backtest_actions(period, buy_and_hold_actions(period), CFG),
        "flat": backtest_actions(period, flat_actions(period), CFG),
        "mixed": backtest_actions(period, [2, 0, 0, 1, 2, 0], CFG),
    }
    rows = regime_rows(results, period)
    assert {r["source"] for r in rows} == {"classifier"}  # no true table: no "true" rows
    by = {(r["policy"], r["regime"]): r for r in rows}
    assert len(rows) == 3 * 5
    counts = [by[("long", g)]["n_steps"] for g in ("TREND_UP", "TREND_DOWN", "RANGE", "VOLATILE", "UNKNOWN")]
    assert counts == [2, 0, 2, 1, 1]
    absent = by[("mixed", "TREND_DOWN")]
    assert [absent[k] for k in ("n_steps", "return_contribution", "sharpe", "exposure")] == [0, 0.0, 0.0, 0.0]
    for name, result in results.items():
        r = simple_returns(result.equity_T)
        # The regimes' compounded contributions multiply back to the whole period's return.
        present = ("TREND_UP", "RANGE", "VOLATILE", "UNKNOWN")
        growth = np.prod([1 + by[(name, g)]["return_contribution"] for g in present])
        assert growth == pytest.approx(1 + result.metrics["total_return"])
        up = by[(name, "TREND_UP")]
        assert up["return_contribution"] == pytest.approx((1 + r[2]) * (1 + r[3]) - 1)
        assert up["sharpe"] == sharpe(r[[2, 3]], result.metrics["steps_per_year"])
        assert up["share_of_steps"] == pytest.approx(2 / 6)
    mixed = by[("mixed", "RANGE")]  # long then short over 100 → 101 → 99: both right
    assert (mixed["exposure"], mixed["direction_accuracy"], mixed["direction_steps"]) == (1.0, 1.0, 2)
    mixed_up = by[("mixed", "TREND_UP")]  # short over 99 → 99 (not scored), then flat
    assert (mixed_up["exposure"], mixed_up["direction_steps"]) == (0.5, 0)
    assert by[("flat", "RANGE")]["log_return"] == 0.0


def test_true_and_classifier_rows_are_labelled_by_source() -> None:
    period = period_from_prices([100.0 + i for i in range(8)])
    period = dataclasses.replace(period, regime_T=np.full(7, RANGE, np.int8))
    results = {"long": backtest_actions(period, buy_and_hold_actions(period), CFG)}
    rows = regime_rows(results, period, true_regimes=minute_table([VOLATILE]))
    true_rows = {r["regime"]: r["n_steps"] for r in rows if r["source"] == "true"}
    assert true_rows == {"TREND_UP": 0, "TREND_DOWN": 0, "RANGE": 0, "VOLATILE": 7}
    assert {r["regime"]: r["n_steps"] for r in rows if r["source"] == "classifier"}["RANGE"] == 7
    short = backtest_actions(period_from_prices([100.0, 101.0]), [2], CFG)
    with pytest.raises(ValueError, match="has 1 steps, the period 7"):
        regime_rows({"short": short}, period)


def test_synthetic_market_rows_use_its_recorded_regimes() -> None:
    setup = small_setup()
    period = trading_period(setup, CFG)
    results = {
        "long": backtest_actions(period, buy_and_hold_actions(period), CFG),
        "momentum": backtest_actions(period, momentum_actions(period), CFG),
    }
    truth = setup.frames.extras["regimes"]
    rows = regime_rows(results, period, true_regimes=truth)  # type: ignore[arg-type]
    for source in ("true", "classifier"):
        mine = [r for r in rows if r["source"] == source and r["policy"] == "long"]
        assert sum(r["n_steps"] for r in mine) == period.n_steps
        assert {"TREND_UP", "TREND_DOWN", "RANGE", "VOLATILE"} <= {r["regime"] for r in mine}
    expected = true_regime_labels(truth, period.time_us_T[: period.n_steps])  # type: ignore[arg-type]
    counts = {Regime(g).name: int((expected == g).sum()) for g in Regime}
    assert {r["regime"]: r["n_steps"] for r in rows if r["source"] == "true" and r["policy"] == "long"} == counts
    acc, scored = direction_accuracy(np.ones(period.n_steps), period.log_ret_T)
    whole = [r for r in rows if r["source"] == "true" and r["policy"] == "long" and r["n_steps"]]
    assert sum(r["direction_steps"] for r in whole) == scored
    assert sum(r["direction_accuracy"] * r["direction_steps"] for r in whole) == pytest.approx(acc * scored)
