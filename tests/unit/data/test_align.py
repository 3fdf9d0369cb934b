"""As-of access with close-time semantics, told with clock times (UTC, 2024-08-09)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from rltrade.data.align import AlignedMarket, BarArrays, last_closed_index, partial_bar, window_index
from rltrade.data.resample import resample_bars, trades_to_bars
from rltrade.data.schema import TRADE_SCHEMA, SchemaError
from rltrade.types import US_PER_HOUR, US_PER_MINUTE, US_PER_SECOND, Timeframe

DAY = 1_723_161_600_000_000  # 2024-08-09 00:00:00 UTC
H, M, S = US_PER_HOUR, US_PER_MINUTE, US_PER_SECOND


def at(hh: int, mm: int = 0, ss: float = 0.0) -> int:
    return DAY + hh * H + mm * M + round(ss * S)


def hour_bars(opens_h: list[int]) -> pl.DataFrame:
    """1h bars opened at the given hours; bar i has close 100 + hour so tests can read which bar they got."""
    return pl.DataFrame(
        {
            "open_us": [at(h) for h in opens_h],
            "open": [100.0 + h for h in opens_h],
            "high": [101.0 + h for h in opens_h],
            "low": [99.0 + h for h in opens_h],
            "close": [100.0 + h for h in opens_h],
            "volume": [1.0] * len(opens_h),
        }
    )


def minute_bars(seed: int, start_us: int, minutes: int, *, trades_per_minute: float = 5.0) -> pl.DataFrame:
    """Sparse random trades resampled to 1m bars, so some minutes are filled."""
    rng = np.random.default_rng(seed)
    n = int(minutes * trades_per_minute)
    ts = np.sort(start_us + rng.integers(0, minutes * M, n))
    ts[0] = start_us
    trades = pl.DataFrame(
        {
            "ts_us": ts,
            "trade_id": np.arange(n),
            "price": np.round(50.0 * np.exp(np.cumsum(rng.normal(0, 2e-3, n))), 2),
            "qty": rng.lognormal(0, 1, n),
            "side": np.where(rng.random(n) < 0.5, 1, -1),
            "is_agg": np.zeros(n, dtype=bool),
        },
        schema=TRADE_SCHEMA,
    )
    return trades_to_bars(trades, Timeframe.M1, start_us=start_us, end_us=start_us + minutes * M)


def test_hourly_bar_is_visible_from_its_close() -> None:
    bars = BarArrays.from_frame(hour_bars([13, 14, 15]), Timeframe.H1)
    t = np.array([at(13, 59, 59.999999), at(14), at(14, 59, 59.999999), at(15), at(15, 42, 10.5), at(16), at(23)])
    assert last_closed_index(bars, t).tolist() == [-1, 0, 0, 1, 1, 2, 2]
    # a 1h bar opened at 14:00 is first visible at 15:00
    assert bars.close_T[last_closed_index(bars, at(15))] == 114.0
    assert np.ndim(last_closed_index(bars, at(15))) == 0


def test_outage_leaves_the_older_bar_visible() -> None:
    bars = BarArrays.from_frame(hour_bars([12, 13, 15]), Timeframe.H1)  # 14:00 bar missing (outage)
    idx = last_closed_index(bars, np.array([at(15, 30), at(16)]))
    assert idx.tolist() == [1, 2]
    assert (at(15, 30) - bars.close_us_T[idx[0]]) == 90 * M  # the caller can see how stale it is


def test_window_index_pads_before_the_first_bar() -> None:
    bars = BarArrays.from_frame(hour_bars([10, 11, 12, 13]), Timeframe.H1)
    idx = window_index(bars, np.array([at(12), at(14, 30), at(9)]), 3)
    assert idx.tolist() == [[-1, 0, 1], [1, 2, 3], [-1, -1, -1]]


def test_bar_arrays_are_read_only_and_checked() -> None:
    bars = BarArrays.from_frame(hour_bars([1, 2]), Timeframe.H1)
    assert len(bars) == 2 and bars.open_us_T.dtype == np.int64 and not bars.is_filled_T.any()
    with pytest.raises(ValueError, match="read-only"):
        bars.close_T[0] = 1.0
    with pytest.raises(ValueError, match="not after row 0"):
        BarArrays.from_frame(hour_bars([2, 1]), Timeframe.H1)
    with pytest.raises(ValueError, match="not on the 1m grid"):
        BarArrays.from_frame(hour_bars([1]).with_columns(pl.col("open_us") + 1), Timeframe.M1)
    with pytest.raises(SchemaError, match="null close at row 1"):
        BarArrays.from_frame(hour_bars([1, 2]).with_columns(pl.Series("close", [1.0, None])), Timeframe.H1)


def test_aligned_market_by_symbol_and_timeframe() -> None:
    market = AlignedMarket.from_frames(
        {
            "ETHUSDT": {Timeframe.H1: hour_bars([13, 14]), Timeframe.M1: minute_bars(0, at(13), 120)},
            "BTCUSDT": {Timeframe.H1: hour_bars([12, 13, 14])},
        }
    )
    assert market.symbols == ["ETHUSDT", "BTCUSDT"]
    assert market.timeframes("ETHUSDT") == [Timeframe.M1, Timeframe.H1]
    t = np.array([at(14, 0, 30.0), at(15)])
    assert market.asof("ETHUSDT", Timeframe.H1, t).tolist() == [0, 1]
    assert market.asof("BTCUSDT", Timeframe.H1, t).tolist() == [1, 2]
    assert market.asof("ETHUSDT", Timeframe.M1, t).tolist() == [59, 119]  # 13:59 and 14:59
    with pytest.raises(KeyError, match="no 1d bars for 'ETHUSDT'; held: 1m, 1h"):
        market.asof("ETHUSDT", Timeframe.D1, t)
    with pytest.raises(KeyError, match="unknown symbol 'SOLUSDT'"):
        market.asof("SOLUSDT", Timeframe.H1, t)
    with pytest.raises(KeyError, match="no bars finer than 1h for 'BTCUSDT'"):
        market.partial("BTCUSDT", Timeframe.H1, t)
    with pytest.raises(ValueError, match="filed under 1m are 1h bars"):
        AlignedMarket({"X": {Timeframe.M1: BarArrays.from_frame(hour_bars([1]), Timeframe.H1)}})


def oracle_partial(fine: pl.DataFrame, tf_us: int, fine_us: int, t: int) -> tuple[float, ...]:
    """Test oracle: filter the fine bars closed by t inside t's period and aggregate them directly."""
    period = t // tf_us * tf_us
    seen = fine.filter((pl.col("open_us") >= period) & (pl.col("open_us") + fine_us <= t))
    before = fine.filter(pl.col("open_us") + fine_us <= t)
    if seen.height == 0:
        c = before["close"][-1] if before.height else float("nan")
        return (period, c, c, c, c, 0.0, 0, (t - period) / tf_us)
    traded = seen.filter(~pl.col("is_filled"))
    c = seen["close"][-1]
    o, h, lo = (traded["open"][0], traded["high"].max(), traded["low"].min()) if traded.height else (c, c, c)
    return (period, o, h, lo, c, seen["volume"].sum(), seen.height, (t - period) / tf_us)


def test_partial_bar_matches_oracle() -> None:
    fine_df = minute_bars(1, at(12), 5 * 60, trades_per_minute=1.5)
    fine_df = fine_df.filter(~pl.col("open_us").is_between(at(14, 10), at(14, 25)))  # a 16-minute outage
    assert fine_df["is_filled"].sum() > 30
    fine = BarArrays.from_frame(fine_df, Timeframe.M1)
    rng = np.random.default_rng(2)
    t = np.r_[at(11), at(12), at(12, 0, 59.9), at(13), at(13, 0, 1.0), at(14, 20), at(16, 59, 59.999999)]
    t = np.r_[t, rng.integers(at(11, 30), at(17, 30), 300)]
    got = partial_bar(fine, Timeframe.H1, t)
    for b, tb in enumerate(t.tolist()):
        want = oracle_partial(fine_df, H, M, tb)
        row = tuple(float(getattr(got, f)[b]) for f in got._fields)
        np.testing.assert_allclose(row, [float(x) for x in want], rtol=1e-12, err_msg=f"t={tb}")


def test_partial_bar_with_clock_times() -> None:
    fine_df = minute_bars(3, at(15), 60)
    got = partial_bar(BarArrays.from_frame(fine_df, Timeframe.M1), Timeframe.H1, np.array([at(15, 42, 10.0), at(15)]))
    # at 15:42:10 the 1h bar opened 15:00 holds the 1m bars 15:00 … 15:41, 2530 s of 3600 elapsed
    assert got.open_us_B.tolist() == [at(15), at(15)]
    assert got.n_fine_B.tolist() == [42, 0]
    assert got.elapsed_frac_B[0] == pytest.approx(2530 / 3600, rel=1e-15)
    assert got.volume_B[0] == pytest.approx(fine_df["volume"][:42].sum(), rel=1e-12)
    # at 15:00:00 exactly nothing of the new hour has closed: empty, no close carried from before 15:00
    assert np.isnan(got.close_B[1]) and got.volume_B[1] == 0.0 and got.elapsed_frac_B[1] == 0.0


def test_partial_bar_agrees_with_resample_bars_over_the_same_fine_bars() -> None:
    fine_df = minute_bars(4, at(10), 2 * 60, trades_per_minute=0.7)
    fine = BarArrays.from_frame(fine_df, Timeframe.M1)
    for t in (at(10, 1, 59.0), at(10, 2), at(10, 33, 0.5), at(10, 59, 59.999999), at(11, 59)):
        period = t // H * H
        seen = fine_df.filter((pl.col("open_us") >= period) & (pl.col("open_us") + M <= t))
        want = resample_bars(seen, Timeframe.M1, Timeframe.H1, complete_only=False)
        got = partial_bar(fine, Timeframe.H1, t)
        assert (got.open_B[0], got.high_B[0], got.low_B[0], got.close_B[0]) == want.select(
            "open", "high", "low", "close"
        ).row(0), t
        assert got.volume_B[0] == pytest.approx(want["volume"].item(), rel=1e-12)


def test_aligned_market_partial_uses_the_next_finer_timeframe_and_caches() -> None:
    minutes = minute_bars(5, at(0), 3 * 60)
    market = AlignedMarket.from_frames(
        {"ETHUSDT": {Timeframe.M1: minutes, Timeframe.H1: resample_bars(minutes, Timeframe.M1, Timeframe.H1)}}
    )
    t = np.array([at(1, 30), at(2, 15, 7.0)])
    first = market.partial("ETHUSDT", Timeframe.H1, t)
    again = market.partial("ETHUSDT", Timeframe.H1, t)
    direct = partial_bar(BarArrays.from_frame(minutes, Timeframe.M1), Timeframe.H1, t)
    for a, b, c in zip(first, again, direct, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert first.n_fine_B.tolist() == [30, 15]
    with pytest.raises(ValueError, match="need finer bars"):
        market.partial("ETHUSDT", Timeframe.M1, t, fine_tf=Timeframe.H1)
