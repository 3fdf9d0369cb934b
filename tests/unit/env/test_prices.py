"""Per-step arrays: fills strictly after the decision (latency), marks, volatility, regimes, pivots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rltrade.config import EnvConfig, FeaturesConfig, LayoutConfig
from rltrade.data.align import BarArrays
from rltrade.data.splits import TimeRange
from rltrade.env.prices import PeriodError, build_period, ewm_volatility, execution_prices, load_funding
from rltrade.features.clock import DecisionClock
from rltrade.features.layout import build_layout
from rltrade.features.market_features import build_market_features
from rltrade.features.regime import classify_regimes
from rltrade.types import US_PER_MINUTE, US_PER_SECOND, Timeframe
from tests.unit.env.market_cases import T0_US, small_setup, trading_period


def _bars() -> BarArrays:
    """Ten 1 s bars from T0: open 100 + k, close 100.5 + k; bars 3 and 4 hold no trade (filled)."""
    k = np.arange(10, dtype=np.float64)
    filled = np.isin(np.arange(10), (3, 4))
    return BarArrays(
        Timeframe.S1,
        T0_US + np.arange(10, dtype=np.int64) * US_PER_SECOND,
        100 + k,
        101 + k,
        99 + k,
        100.5 + k,
        np.where(filled, 0.0, 1.0),
        filled,
    )


@pytest.mark.parametrize(
    ("latency_ms", "fill_bars"),
    [
        (100.0, [2, 5, 5, 5, 6, 7, 8, 9]),  # next bar's open; bars 3 and 4 have no trade
        (1000.0, [2, 5, 5, 5, 6, 7, 8, 9]),  # "at or after t + latency": the bar opening exactly then
        (1500.0, [5, 5, 5, 6, 7, 8, 9]),  # t + 1.5 s skips a whole bar; the last step has no fill
    ],
)
def test_fill_is_the_first_traded_bar_open_at_or_after_t_plus_latency(latency_ms: float, fill_bars: list[int]) -> None:
    clock = DecisionClock(T0_US + US_PER_SECOND, US_PER_SECOND, 8)  # decisions at 1 s .. 8 s
    cfg = EnvConfig(latency_ms=latency_ms)
    got = execution_prices(_bars(), clock, cfg.latency_us)
    n = min(len(fill_bars), clock.n_steps) - 1
    assert got.n_steps == n
    np.testing.assert_array_equal(got.fill_price_T, 100.0 + np.array(fill_bars[: n + 1]))
    t = clock.time_of(np.arange(n + 1))
    assert np.all(got.fill_us_T >= t + cfg.latency_us) and np.all(got.fill_us_T > t)
    # The mark at t is the close of the last bar closed by t (bar k closes at k + 1 s).
    np.testing.assert_array_equal(got.mark_T, 100.5 + np.arange(n + 1))


def test_period_fills_match_the_first_trade_after_the_latency_on_real_trades_of_the_market() -> None:
    setup = small_setup()
    cfg = EnvConfig(latency_ms=250.0)
    period = trading_period(setup, cfg)
    trades = setup.frames.trades["eth"]
    ts, price = trades["ts_us"].to_numpy(), trades["price"].to_numpy()
    t = period.time_us_T
    # The next 1 s bar opening at or after t + latency starts at the next whole second; its open is the
    # first trade in it or later.
    first_second = -(-(t + cfg.latency_us) // US_PER_SECOND) * US_PER_SECOND
    k = np.searchsorted(ts, first_second, side="left")
    np.testing.assert_array_equal(period.fill_price_T, price[k])
    assert np.all(period.fill_us_T > t)
    assert np.all(ts[k] >= period.fill_us_T) and np.all(ts[k] < period.fill_us_T + US_PER_SECOND)
    np.testing.assert_allclose(period.log_ret_T, np.diff(np.log(price[k])))
    # Marks are the last trade at or before t (a 1 s bar's close is its last trade; quiet seconds carry it).
    last = np.searchsorted(ts, t, side="left") - 1
    np.testing.assert_array_equal(period.mark_T, price[last])


def test_minute_clock_fills_at_the_next_minute_bar() -> None:
    setup = small_setup()
    start = setup.ticks.start_us - 3 * 24 * 3600 * US_PER_SECOND  # history only: no trades, 1m bars
    period = build_period(setup.features, TimeRange(start, start + 120 * US_PER_MINUTE), EnvConfig(step=Timeframe.M1))
    assert period.clock.step_us == US_PER_MINUTE and period.n_steps == 119
    np.testing.assert_array_equal(period.fill_us_T - period.time_us_T, US_PER_MINUTE)
    bars = setup.frames.bars["eth"][Timeframe.M1]
    opens = bars.filter(pl.col("open_us").is_in(period.fill_us_T.tolist()))["open"].to_numpy()
    np.testing.assert_array_equal(period.fill_price_T, opens)


def test_unusable_periods_are_refused_with_the_reason() -> None:
    setup = small_setup()
    with pytest.raises(PeriodError, match="no 1s bar has closed by the period start"):
        build_period(
            setup.features, TimeRange(setup.ticks.start_us - 600 * US_PER_SECOND, setup.ticks.end_us), EnvConfig()
        )
    with pytest.raises(PeriodError, match="data ends too early"):
        build_period(
            setup.features, TimeRange(setup.ticks.end_us + 10, setup.ticks.end_us + 600 * US_PER_SECOND), EnvConfig()
        )
    cfg = FeaturesConfig(
        layout=LayoutConfig(name="demo", timeframes=(Timeframe.M1,), reference_timeframes=(Timeframe.M1,))
    )
    only_minutes = build_market_features(setup.frames, build_layout(cfg.layout), cfg)
    with pytest.raises(PeriodError, match=r"set env\.step"):
        build_period(only_minutes, setup.ticks, EnvConfig())


def test_ewm_volatility_is_causal_and_matches_a_direct_loop() -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(0, 1e-3, 200)
    vol = ewm_volatility(r, 10.0, 1e-6)
    decay = 0.5 ** (1 / 10.0)
    for i in (1, 7, 150):
        w = decay ** np.arange(i - 1, -1, -1)
        assert vol[i] == pytest.approx(np.sqrt(np.sum(w * r[:i] ** 2) / np.sum(w)))
    assert vol[0] == 1e-6
    changed = r.copy()
    changed[120:] *= 50
    np.testing.assert_array_equal(ewm_volatility(changed, 10.0, 1e-6)[:121], vol[:121])


def test_regime_labels_are_those_of_the_state_at_each_step() -> None:
    setup = small_setup()
    period = trading_period(setup)
    idx = np.arange(0, period.n_steps, 97)
    rows = setup.builder.gather_blocks(period.clock.time_of(idx))
    flags = rows["flags"][:, setup.layout.flag_names.index("has_regime")].astype(bool)
    np.testing.assert_array_equal(period.regime_T[idx], classify_regimes(rows["regime"], flags))


def test_pivot_steps_point_at_pivots_confirmed_during_the_step() -> None:
    setup = small_setup()
    period = trading_period(setup)
    assert setup.features.pivots is not None
    t = period.time_us_T
    for kind, steps in (("low", period.pivot_low_T), ("high", period.pivot_high_T)):
        expected = np.full(period.n_steps, -1)
        for p in setup.features.pivots.records():
            if p.level != 0 or p.kind.value != kind or not t[0] < p.confirm_us <= t[-1]:
                continue
            i = int(np.searchsorted(t, p.confirm_us, side="left")) - 1  # t_i < confirm <= t_{i+1}
            step = (p.time_us - period.clock.start_us) // period.clock.step_us
            expected[i] = step if step >= 0 else -1
        np.testing.assert_array_equal(steps, expected)
        assert np.all(steps < np.arange(period.n_steps) + 1)  # a pivot bar opens before its confirmation step ends
    assert (period.pivot_low_T >= 0).sum() + (period.pivot_high_T >= 0).sum() > 3


def test_a_funding_file_is_read_once_by_the_caller_never_per_period(tmp_path: Path) -> None:
    setup = small_setup()
    cfg = EnvConfig(funding_file=tmp_path / "never_read.csv")
    period = TimeRange(setup.ticks.start_us + 120 * US_PER_SECOND, setup.ticks.end_us)
    with pytest.raises(ValueError, match=r"funding_file is .*never_read.csv.*load_funding"):
        build_period(setup.features, period, cfg)
    assert load_funding(EnvConfig()) is None


@pytest.mark.real
def test_a_funding_file_in_the_config_replaces_the_borrow_rate() -> None:
    path = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "real"
    path = path / "binance_usdm_ETHUSDT_fundingrate_2019-11-27_2026-05-17.csv.gz"
    if not path.exists():
        pytest.skip(f"real funding data not found at {path}")
    setup = small_setup()
    borrowed = trading_period(setup, EnvConfig())
    funded = trading_period(setup, EnvConfig(funding_file=path))
    assert np.all(borrowed.carry_T > 0)
    # The last 72 minutes of 2025 hold no 8-hourly funding event (the next one is at 00:00 on 1 January).
    np.testing.assert_array_equal(funded.carry_T, 0.0)
    np.testing.assert_array_equal(funded.fill_price_T, borrowed.fill_price_T)
