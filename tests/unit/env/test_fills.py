"""Costs, carry and the account block: hand-computed cases, and the real-data spread default."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rltrade.config import REAL_ETH_HALF_SPREAD_BPS, EnvConfig
from rltrade.data.importers import median_half_spread_bps, read_book_ticker, read_funding
from rltrade.env.fills import YEAR_US, AccountBook, CostModel, position_log_return, short_carry, with_measured_spread
from rltrade.features.account import account_vector
from rltrade.types import US_PER_HOUR, US_PER_SECOND

REAL = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "real"
COSTS = CostModel(taker_fee=0.001, half_spread_bps=0.5, impact_bps=2.0, position_fraction=0.5)


def test_cost_of_a_change_by_hand() -> None:
    # Flat -> long at half of equity: q = 0.5, 0.5 · (0.001 + (0.5 + 2 · 0.5) · 1e-4) = 5.75e-4.
    assert COSTS.cost_fraction(1)[()] == pytest.approx(0.5 * (0.001 + 1.5e-4))
    # A reversal trades q = 1: 1 · (0.001 + (0.5 + 2 · 1) · 1e-4) = 1.25e-3 (impact grows with size).
    assert COSTS.cost_fraction(2)[()] == pytest.approx(0.00125)
    assert COSTS.cost_fraction(0)[()] == 0.0
    assert COSTS.round_trip == pytest.approx(-2 * math.log1p(-5.75e-4) / 0.5)


def test_step_log_return_by_hand() -> None:
    r = math.log(101 / 100)
    got, cost = position_log_return([1, 1, -1, 0], [0, 1, 1, -1], [r, r, r, r], [1e-6] * 4, COSTS)
    assert got[0] == pytest.approx(0.5 * r + math.log1p(-5.75e-4))  # enter long: half the move, minus cost
    assert got[1] == pytest.approx(0.5 * r)  # hold: no cost
    assert got[2] == pytest.approx(-0.5 * r + math.log1p(-0.00125) + math.log1p(-0.5 * 1e-6))  # reverse, borrow
    assert got[3] == pytest.approx(math.log1p(-5.75e-4))  # close the short: flat earns nothing
    assert cost.tolist() == pytest.approx([5.75e-4, 0.0, 0.00125, 5.75e-4])


def test_fees_never_help_and_shorts_pay_borrow() -> None:
    free = CostModel(0.0, 0.0, 0.0, 1.0)
    paid = CostModel(0.001, 1.0, 1.0, 1.0)
    pos, prev = np.array([-1, 0, 1, 1, -1]), np.array([0, -1, 1, -1, -1])
    r = np.array([0.01, -0.02, 0.0, 0.003, -0.001])
    assert np.all(position_log_return(pos, prev, r, 0.0, paid)[0] <= position_log_return(pos, prev, r, 0.0, free)[0])
    # A short held over a step with no price move loses exactly the carry; a long does not pay it.
    short, _ = position_log_return([-1], [-1], [0.0], [2e-6], free)
    long_, _ = position_log_return([1], [1], [0.0], [2e-6], free)
    assert short[0] == pytest.approx(math.log1p(-2e-6)) and long_[0] == 0.0


def test_on_perpetuals_longs_pay_the_funding_shorts_receive() -> None:
    # A positive funding rate of 1e-4 in the step: carry per unit of short is -1e-4 (short_carry's sign).
    perp = CostModel(0.0, 0.0, 0.0, 0.5, funding=True)
    spot = CostModel(0.0, 0.0, 0.0, 0.5)
    held, _ = position_log_return([1, -1, 0], [1, -1, 0], [0.0] * 3, [-1e-4] * 3, perp)
    assert held.tolist() == pytest.approx([math.log1p(-0.5e-4), math.log1p(0.5e-4), 0.0])
    # On spot the same carry is a short's borrow only: a long holds none of it.
    on_spot, _ = position_log_return([1, -1], [1, -1], [0.0] * 2, [-1e-4] * 2, spot)
    assert on_spot.tolist() == pytest.approx([0.0, math.log1p(0.5e-4)])
    assert CostModel.from_config(EnvConfig(funding_file=Path("f.csv"))).funding
    assert not CostModel.from_config(EnvConfig()).funding


def test_constant_borrow_is_pro_rata_per_step() -> None:
    t = np.arange(4, dtype=np.int64) * US_PER_SECOND
    carry = short_carry(t, EnvConfig(borrow_annual_rate=0.1))
    assert carry.tolist() == pytest.approx([0.1 * US_PER_SECOND / YEAR_US] * 3)
    assert YEAR_US == 365.25 * 86_400 * US_PER_SECOND


def test_funding_events_are_charged_in_the_step_they_fall_in() -> None:
    funding = pl.DataFrame({"ts_us": [0, 8 * US_PER_HOUR, 16 * US_PER_HOUR], "funding_rate": [1e-4, -3e-4, 2e-4]})
    t = np.array([0, 4, 8, 12, 16], dtype=np.int64) * US_PER_HOUR
    # Steps (0,4h], (4h,8h], (8h,12h], (12h,16h]: events at 8h and 16h; a short receives the rate.
    assert short_carry(t, EnvConfig(), funding).tolist() == pytest.approx([0.0, 3e-4, 0.0, -2e-4])
    with pytest.raises(ValueError, match="funding table covers"):
        short_carry(t + 30 * US_PER_HOUR, EnvConfig(), funding)


def test_account_vectors_match_the_shared_account_block() -> None:
    book = AccountBook.zeros(2)
    book.apply(
        np.array([1, 0], np.int8), np.array([-0.001, 0.0]), np.array([-0.001, 0.0]), np.zeros(2), np.array([5, 5])
    )
    book.apply(
        np.array([1, -1], np.int8), np.array([0.004, 0.0]), np.array([0.003, -0.002]), np.zeros(2), np.array([6, 6])
    )
    got = book.vectors(np.array([7, 7]))
    np.testing.assert_allclose(got[0], account_vector(1, 0.002, 2, 0.002, 0.0), atol=1e-7)
    # Entered short at step 6 (mark equity 0 then), now at -0.002, which is also the drawdown from the peak 0.
    np.testing.assert_allclose(got[1], account_vector(-1, -0.002, 1, -0.002, -0.002), atol=1e-7)
    book.reset(np.array([True, False]))
    np.testing.assert_allclose(book.vectors(np.array([0, 7]))[0], account_vector(0, 0.0, 0, 0.0, 0.0))


@pytest.mark.real
def test_default_half_spread_is_the_measured_real_eth_value() -> None:
    path = REAL / "binance_spot_ETHUSDT_bookTicker_2024-08-08T2354_2024-08-09T0005.csv.gz"
    if not path.exists():
        pytest.skip(f"real book-ticker data not found at {path}")
    measured = median_half_spread_bps(read_book_ticker(path))
    assert measured == pytest.approx(REAL_ETH_HALF_SPREAD_BPS, abs=5e-5)
    assert EnvConfig().half_spread_bps == REAL_ETH_HALF_SPREAD_BPS
    calibrated = with_measured_spread(EnvConfig(half_spread_bps=3.0), path)
    assert calibrated.half_spread_bps == measured and calibrated.taker_fee == EnvConfig().taker_fee


@pytest.mark.real
def test_real_funding_rates_give_a_short_carry() -> None:
    path = REAL / "binance_usdm_ETHUSDT_fundingrate_2019-11-27_2026-05-17.csv.gz"
    if not path.exists():
        pytest.skip(f"real funding data not found at {path}")
    funding = read_funding(path)
    day0 = int(funding.item(100, "ts_us"))
    t = day0 + np.arange(0, 25, dtype=np.int64) * US_PER_HOUR
    carry = short_carry(t, EnvConfig(), funding)
    inside = funding.filter((pl.col("ts_us") > t[0]) & (pl.col("ts_us") <= t[-1]))["funding_rate"].to_numpy()
    assert inside.size == 3  # three 8-hourly events in 24 h
    assert carry.sum() == pytest.approx(-inside.sum())
    assert np.count_nonzero(carry) <= 3
