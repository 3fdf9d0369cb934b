"""Resampling trades → bars and bars → coarser bars: hand-made cases, a loop oracle, and real Binance data.

The real-data tests check the three identities of ``shared/data/real/README.md``: trades → 1m equals the
1m klines, 1m → 1h equals the 1h klines, 1h → 1d equals the 1d klines (over complete periods only).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rltrade.data import resample
from rltrade.data.resample import (
    ResampleError,
    resample_bars,
    resample_bars_with_report,
    trades_to_bars,
)
from rltrade.data.schema import BAR_SCHEMA, TRADE_SCHEMA, SchemaError
from rltrade.types import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE, US_PER_SECOND, Timeframe

T0 = 1_723_161_600_000_000  # 2024-08-09 00:00:00 UTC
S = US_PER_SECOND
REAL = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "real"


def make_trades(rows: list[tuple[int, float, float, int]]) -> pl.DataFrame:
    """TRADE_SCHEMA frame from ``(ts_us, price, qty, side)`` rows, trade ids 1, 2, ... in row order."""
    ts, price, qty, side = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [], [])
    return pl.DataFrame(
        {
            "ts_us": ts,
            "trade_id": list(range(1, len(rows) + 1)),
            "price": price,
            "qty": qty,
            "side": side,
            "is_agg": [False] * len(rows),
        },
        schema=TRADE_SCHEMA,
    )


def random_trades(rng: np.random.Generator, n: int, *, span_us: int, start_us: int = T0) -> pl.DataFrame:
    """``n`` trades at random times over ``span_us`` (so with empty bars), ties included."""
    ts = np.sort(start_us + rng.integers(0, span_us, n))
    ts[1::7] = ts[::7][: len(ts[1::7])]  # every 7th pair shares a timestamp
    ts = np.sort(ts)
    return pl.DataFrame(
        {
            "ts_us": ts,
            "trade_id": np.arange(n, dtype=np.int64) + 1000,
            "price": np.round(100.0 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))), 2),
            "qty": np.round(rng.lognormal(-2, 1, n), 4) + 1e-4,
            "side": np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8),
            "is_agg": np.zeros(n, dtype=bool),
        },
        schema=TRADE_SCHEMA,
    )


def oracle_trades_to_bars(trades: pl.DataFrame, tf_us: int) -> list[dict[str, object]]:
    """Test oracle: a plain loop over trades and bars, the definition written out."""
    rows = trades.rows(named=True)
    first, last = rows[0]["ts_us"] // tf_us, rows[-1]["ts_us"] // tf_us
    bars: list[dict[str, object]] = []
    i, prev_close = 0, None
    for k in range(first, last + 1):
        mine = []
        while i < len(rows) and rows[i]["ts_us"] // tf_us == k:
            mine.append(rows[i])
            i += 1
        if mine:
            prices = [r["price"] for r in mine]
            bar = {
                "open_us": k * tf_us,
                "open": prices[0],
                "high": max(prices),
                "low": min(prices),
                "close": prices[-1],
                "volume": sum(r["qty"] for r in mine),
                "quote_volume": sum(r["price"] * r["qty"] for r in mine),
                "trade_count": len(mine),
                "taker_buy_volume": sum(r["qty"] for r in mine if r["side"] == 1),
                "is_filled": False,
            }
            prev_close = prices[-1]
        else:
            c = prev_close
            bar = dict.fromkeys(("open", "high", "low", "close"), c)
            bar.update(open_us=k * tf_us, volume=0.0, quote_volume=0.0, trade_count=0)
            bar.update(taker_buy_volume=0.0, is_filled=True)
        bars.append(bar)
    return bars


def assert_bars_equal(got: pl.DataFrame, want: pl.DataFrame | list[dict[str, object]]) -> None:
    want_df = want if isinstance(want, pl.DataFrame) else pl.DataFrame(want, schema=BAR_SCHEMA)
    assert got.schema == pl.Schema(BAR_SCHEMA)
    assert got.height == want_df.height
    for col in ("open_us", "open", "high", "low", "close", "trade_count", "is_filled"):
        assert got[col].to_list() == want_df[col].to_list(), col
    for col in ("volume", "quote_volume", "taker_buy_volume"):
        np.testing.assert_allclose(got[col].to_numpy(), want_df[col].to_numpy(), rtol=1e-12, err_msg=col)


# --- trades → bars: hand-made cases -------------------------------------------------------------


def test_empty_second_is_explicit_and_carries_the_close() -> None:
    trades = make_trades([(T0, 10.0, 1.0, 1), (T0 + 700_000, 11.0, 2.0, -1), (T0 + 2_100_000, 9.0, 0.5, 1)])
    bars = trades_to_bars(trades, Timeframe.S1)
    assert bars.schema == pl.Schema(BAR_SCHEMA)
    assert bars["open_us"].to_list() == [T0, T0 + S, T0 + 2 * S]
    assert bars.row(0) == (T0, 10.0, 11.0, 10.0, 11.0, 3.0, 32.0, 2, 1.0, False)
    assert bars.row(1) == (T0 + S, 11.0, 11.0, 11.0, 11.0, 0.0, 0.0, 0, 0.0, True)
    assert bars.row(2) == (T0 + 2 * S, 9.0, 9.0, 9.0, 9.0, 0.5, 4.5, 1, 0.5, False)


def test_single_trade_is_one_bar() -> None:
    bars = trades_to_bars(make_trades([(T0 + 5, 42.0, 0.25, -1)]), Timeframe.M1)
    assert bars.rows() == [(T0, 42.0, 42.0, 42.0, 42.0, 0.25, 10.5, 1, 0.0, False)]


def test_trade_exactly_on_the_boundary_opens_the_next_bar() -> None:
    trades = make_trades([(T0 + S - 1, 1.0, 1.0, 1), (T0 + S, 2.0, 1.0, 1), (T0 + 2 * S - 1, 3.0, 1.0, 1)])
    bars = trades_to_bars(trades, Timeframe.S1)
    assert bars["open_us"].to_list() == [T0, T0 + S]
    assert bars["trade_count"].to_list() == [1, 2]
    assert bars["close"].to_list() == [1.0, 3.0]
    assert bars["open"].to_list() == [1.0, 2.0]


def test_same_timestamp_trades_are_ordered_by_trade_id() -> None:
    trades = make_trades([(T0 + 10, 5.0, 1.0, 1), (T0 + 10, 7.0, 1.0, 1), (T0 + 10, 6.0, 1.0, -1)])
    bars = trades_to_bars(trades, Timeframe.S1)
    assert bars.select("open", "high", "low", "close").row(0) == (5.0, 7.0, 5.0, 6.0)
    assert bars["taker_buy_volume"].item() == 2.0


def test_range_pads_with_filled_bars_and_ignores_trades_after_it() -> None:
    trades = make_trades([(T0 - 500_000, 8.0, 1.0, 1), (T0 + 1_200_000, 9.0, 1.0, 1), (T0 + 5 * S, 99.0, 1.0, 1)])
    bars = trades_to_bars(trades, Timeframe.S1, start_us=T0, end_us=T0 + 4 * S)
    assert bars["open_us"].to_list() == [T0 + i * S for i in range(4)]
    # the trade before the range only seeds the carried close; the one after it is not used
    assert bars["close"].to_list() == [8.0, 9.0, 9.0, 9.0]
    assert bars["is_filled"].to_list() == [True, False, True, True]
    assert bars["volume"].sum() == 1.0


def test_range_off_the_grid_selects_whole_bars() -> None:
    trades = make_trades([(T0 + 100, 1.0, 1.0, 1), (T0 + S + 900_000, 2.0, 1.0, 1)])
    bars = trades_to_bars(trades, Timeframe.S1, start_us=T0 + 500_000, end_us=T0 + S + 1)
    assert bars["open_us"].to_list() == [T0, T0 + S]
    assert bars["trade_count"].to_list() == [1, 1]  # whole bars, though both trades lie outside [start, end)


def test_end_us_is_exclusive() -> None:
    trades = make_trades([(T0, 1.0, 1.0, 1)])
    assert trades_to_bars(trades, Timeframe.S1, start_us=T0, end_us=T0 + 3 * S).height == 3


def test_leading_empty_bar_without_a_known_close_is_an_error() -> None:
    trades = make_trades([(T0 + 2 * S, 1.0, 1.0, 1)])
    with pytest.raises(ResampleError, match="prev_close"):
        trades_to_bars(trades, Timeframe.S1, start_us=T0)
    bars = trades_to_bars(trades, Timeframe.S1, start_us=T0, prev_close=0.5)
    assert bars["close"].to_list() == [0.5, 0.5, 1.0]
    assert bars["is_filled"].to_list() == [True, True, False]


def test_no_trades() -> None:
    assert trades_to_bars(make_trades([]), Timeframe.S1).schema == pl.Schema(BAR_SCHEMA)
    assert trades_to_bars(make_trades([]), Timeframe.S1).height == 0
    bars = trades_to_bars(make_trades([]), Timeframe.S1, start_us=T0, end_us=T0 + 2 * S, prev_close=3.0)
    assert bars["close"].to_list() == [3.0, 3.0]
    assert bars["is_filled"].all()
    with pytest.raises(ResampleError):
        trades_to_bars(make_trades([]), Timeframe.S1, start_us=T0)


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ((T0 + 3, float("nan"), 1.0, 1), "row 2 has price=nan"),
        ((T0 + 3, -1.0, 1.0, 1), "row 2 has price=-1.0"),
        ((T0 + 3, float("inf"), 1.0, 1), "row 2 has price=inf"),
        ((T0 + 3, -float("inf"), 1.0, 1), "row 2 has price=-inf"),
        ((T0 + 3, -0.0, 1.0, 1), "row 2 has price=-0.0"),
        ((T0 + 3, 0.0, 1.0, 1), "row 2 has price=0.0"),
        ((T0 + 3, -float("nan"), 1.0, 1), "row 2 has price=nan"),
        ((T0 + 3, 1.0, float("nan"), 1), "row 2 has qty=nan"),
        ((T0 + 3, 1.0, 0.0, 1), "row 2 has qty=0.0"),
        ((T0 + 3, 1.0, 1.0, 0), "row 2 has side=0"),
        ((T0 + 1, 1.0, 1.0, 1), "row 2 .* is not after row 1"),
    ],
)
def test_bad_trades_are_rejected_with_their_row(row: tuple[int, float, float, int], match: str) -> None:
    trades = make_trades([(T0, 1.0, 1.0, 1), (T0 + 2, 1.0, 1.0, 1), row, (T0 + 4, 1.0, 1.0, 1)])
    with pytest.raises(ResampleError, match=match):
        trades_to_bars(trades, Timeframe.S1)


def test_duplicate_and_tie_misordered_trades_are_rejected() -> None:
    dup = make_trades([(T0, 1.0, 1.0, 1), (T0, 1.0, 1.0, 1)]).with_columns(pl.lit(7, pl.Int64).alias("trade_id"))
    with pytest.raises(ResampleError, match=r"row 1 .* not after row 0"):
        trades_to_bars(dup, Timeframe.S1)
    swapped = make_trades([(T0, 1.0, 1.0, 1), (T0, 2.0, 1.0, 1)]).with_columns(pl.Series("trade_id", [5, 4]))
    with pytest.raises(ResampleError, match="trade_id"):
        trades_to_bars(swapped, Timeframe.S1)
    # ids need not be monotone across different timestamps: only (ts_us, trade_id) order matters
    ok = make_trades([(T0, 1.0, 1.0, 1), (T0 + 1, 2.0, 1.0, 1)]).with_columns(pl.Series("trade_id", [5, 4]))
    assert trades_to_bars(ok, Timeframe.S1)["trade_count"].item() == 2


def test_null_is_rejected() -> None:
    trades = make_trades([(T0, 1.0, 1.0, 1), (T0 + 1, 1.0, 1.0, 1)]).with_columns(
        pl.Series("price", [1.0, None], dtype=pl.Float64)
    )
    with pytest.raises(SchemaError, match="null price at row 1"):
        trades_to_bars(trades, Timeframe.S1)


# --- trades → bars: against the oracle, across chunk and thread boundaries -------------------------


@pytest.mark.parametrize("tf", [Timeframe.S1, Timeframe.M1])
def test_matches_loop_oracle(tf: Timeframe) -> None:
    trades = random_trades(np.random.default_rng(3), 3000, span_us=600 * S)
    assert_bars_equal(trades_to_bars(trades, tf), oracle_trades_to_bars(trades, tf.us))


def test_chunked_threaded_result_is_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    trades = random_trades(np.random.default_rng(4), 5000, span_us=900 * S)
    single = trades_to_bars(trades, Timeframe.S1)
    monkeypatch.setattr(resample, "_CHUNK_ROWS", 37)  # ~135 chunks
    chunked = trades_to_bars(trades, Timeframe.S1, start_us=T0 + 10 * S, end_us=T0 + 800 * S, n_threads=3)
    assert chunked.equals(single.filter(pl.col("open_us").is_between(T0 + 10 * S, T0 + 799 * S)))
    assert_bars_equal(single, oracle_trades_to_bars(trades, S))


def test_first_bad_row_is_reported_from_any_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resample, "_CHUNK_ROWS", 50)
    trades = random_trades(np.random.default_rng(5), 1000, span_us=100 * S)
    ts = trades["ts_us"].to_numpy().copy()
    ts[777], ts[901] = ts[776] - 1, ts[900] - 1
    with pytest.raises(ResampleError, match="row 777 "):
        trades_to_bars(trades.with_columns(pl.Series("ts_us", ts)), Timeframe.S1, n_threads=2)
    # whatever the rule broken, and wherever (inside the range or not), the first bad row is reported
    price = trades["price"].to_numpy().copy()
    price[[20, 980]] = [float("nan"), -1.0]
    with pytest.raises(ResampleError, match="row 20 has price=nan"):
        trades_to_bars(trades.with_columns(pl.Series("price", price)), Timeframe.S1, n_threads=2)
    qty = trades["qty"].to_numpy().copy()
    qty[610] = float("inf")
    ts[777], ts[901] = ts[778], ts[902]
    bad = trades.with_columns(pl.Series("qty", qty), pl.Series("ts_us", ts))
    with pytest.raises(ResampleError, match="row 610 has qty=inf"):
        trades_to_bars(bad, Timeframe.S1, n_threads=2)
    with pytest.raises(ResampleError, match="row 610 has qty=inf"):  # also outside the range asked for
        trades_to_bars(bad, Timeframe.S1, end_us=T0 + S, n_threads=2)
    with pytest.raises(ValueError, match="n_threads"):
        trades_to_bars(trades, Timeframe.S1, n_threads=0)


def test_trades_to_coarse_bars_equal_trades_to_seconds_resampled() -> None:
    """1m from trades == 1m from 1s bars: empty seconds must not set a minute's open, high or low."""
    trades = random_trades(np.random.default_rng(6), 400, span_us=30 * 60 * S, start_us=T0 - 7 * S)
    direct = trades_to_bars(trades, Timeframe.M1, start_us=T0, end_us=T0 + 30 * US_PER_MINUTE)
    seconds = trades_to_bars(trades, Timeframe.S1, start_us=T0, end_us=T0 + 30 * US_PER_MINUTE)
    assert seconds["is_filled"].sum() > 1000  # sparse: most seconds are empty
    via_seconds = resample_bars(seconds, Timeframe.S1, Timeframe.M1)
    assert_bars_equal(via_seconds, direct)


# --- bars → coarser bars --------------------------------------------------------------------------


def minute_bars(n: int, *, seed: int = 0, start_us: int = T0) -> pl.DataFrame:
    trades = random_trades(np.random.default_rng(seed), 40 * n, span_us=n * US_PER_MINUTE, start_us=start_us)
    return trades_to_bars(trades, Timeframe.M1, start_us=start_us, end_us=start_us + n * US_PER_MINUTE)


def test_resample_drops_and_counts_incomplete_bars() -> None:
    bars = minute_bars(4 * 60)
    gap = bars.filter(~pl.col("open_us").is_between(T0 + 70 * US_PER_MINUTE, T0 + 74 * US_PER_MINUTE))
    gap = gap.slice(3)  # the first hour also starts late
    out, report = resample_bars_with_report(gap, Timeframe.M1, Timeframe.H1)
    assert out["open_us"].to_list() == [T0 + 2 * US_PER_HOUR, T0 + 3 * US_PER_HOUR]
    assert (report.n_incomplete, report.n_dropped, report.n_src_missing) == (2, 2, 5 + 3)
    assert report.n_src_dropped == 57 + 55
    assert report.n_src == gap.height and report.n_out == 2 and report.n_empty == 0
    assert report.incomplete_open_us.tolist() == [T0, T0 + US_PER_HOUR]
    assert_bars_equal(out, resample_bars(bars, Timeframe.M1, Timeframe.H1).slice(2))


def test_resample_keeps_incomplete_bars_when_asked() -> None:
    bars = minute_bars(2 * 60)
    holed = bars.filter(pl.col("open_us") != T0 + 90 * US_PER_MINUTE)
    out, report = resample_bars_with_report(holed, Timeframe.M1, Timeframe.H1, complete_only=False)
    assert out.height == 2 and report.n_incomplete == 1 and report.n_dropped == 0 and report.n_src_missing == 1
    second_hour = holed.filter(pl.col("open_us") >= T0 + US_PER_HOUR)
    assert out["volume"][1] == pytest.approx(second_hour["volume"].sum(), rel=1e-12)
    assert out["trade_count"][1] == second_hour["trade_count"].sum()


def test_resample_counts_empty_periods() -> None:
    bars = minute_bars(3 * 60)
    no_middle_hour = bars.filter(~pl.col("open_us").is_between(T0 + US_PER_HOUR, T0 + 2 * US_PER_HOUR - 1))
    out, report = resample_bars_with_report(no_middle_hour, Timeframe.M1, Timeframe.H1)
    assert out["open_us"].to_list() == [T0, T0 + 2 * US_PER_HOUR]
    assert report.n_empty == 1 and report.n_incomplete == 0


def test_resample_filled_bars_carry_and_do_not_set_prices() -> None:
    def bar(i: int, o: float, h: float, lo: float, c: float, v: float, filled: bool) -> tuple[object, ...]:
        return (T0 + i * S, o, h, lo, c, v, o * v, int(v > 0), 0.0, filled)

    seconds = [bar(i, 50.0, 50.0, 50.0, 50.0, 0.0, True) for i in range(60)]  # an all-empty minute
    seconds += [bar(60, 50.0, 50.0, 50.0, 50.0, 0.0, True)]  # carried 50, below the next trades
    seconds += [bar(61, 60.0, 61.0, 59.0, 60.5, 1.0, False)]
    seconds += [bar(i, 60.5, 60.5, 60.5, 60.5, 0.0, True) for i in range(62, 120)]
    out = resample_bars(pl.DataFrame(seconds, schema=BAR_SCHEMA, orient="row"), Timeframe.S1, Timeframe.M1)
    assert out.select("open", "high", "low", "close", "is_filled").rows() == [
        (50.0, 50.0, 50.0, 50.0, True),
        (60.0, 61.0, 59.0, 60.5, False),
    ]


def test_resample_propagates_unknown_sums_as_null() -> None:
    bars = minute_bars(120).with_columns(
        pl.when(pl.col("open_us") == T0 + 5 * US_PER_MINUTE)
        .then(None)
        .otherwise(pl.col("trade_count"))
        .alias("trade_count")
    )
    out = resample_bars(bars, Timeframe.M1, Timeframe.H1)
    assert out["trade_count"].to_list() == [None, bars["trade_count"].slice(60).sum()]
    assert out["volume"].null_count() == 0


def test_resample_of_nothing_is_empty() -> None:
    out, report = resample_bars_with_report(pl.DataFrame(schema=BAR_SCHEMA), Timeframe.M1, Timeframe.H1)
    assert out.schema == pl.Schema(BAR_SCHEMA) and out.height == 0
    assert (report.n_src, report.n_out, report.n_incomplete, report.n_empty) == (0, 0, 0, 0)


def test_resample_rejects_bad_input() -> None:
    bars = minute_bars(60)
    with pytest.raises(ResampleError, match="multiple"):
        resample_bars(bars, Timeframe.H1, Timeframe.M1)
    with pytest.raises(ResampleError, match=r"row 1 .* not after row 0"):
        resample_bars(pl.concat([bars.slice(0, 1), bars]), Timeframe.M1, Timeframe.H1)
    with pytest.raises(ResampleError, match="not a multiple of 60000000"):
        resample_bars(bars.with_columns(pl.col("open_us") + 1000), Timeframe.M1, Timeframe.H1)
    nan_low = bars.with_columns(pl.when(pl.int_range(pl.len()) == 7).then(float("nan")).otherwise("low").alias("low"))
    with pytest.raises(ResampleError, match="row 7 has low=nan"):
        resample_bars(nan_low, Timeframe.M1, Timeframe.H1)


def test_resample_logs_what_it_dropped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="rltrade.data.resample"):
        resample_bars(minute_bars(90), Timeframe.M1, Timeframe.H1)
    assert any(
        r.levelno == logging.WARNING and "1 dropped (30 source bars unused)" in r.message for r in caplog.records
    )


# --- real Binance data ---------------------------------------------------------------------------


def real_file(name: str) -> Path:
    path = REAL / name
    if not path.exists():
        pytest.skip(f"real data not found at {path} (needs ../shared/data/real beside the repo)")
    return path


def read_real_klines(name: str) -> pl.DataFrame:
    """A 6-column Binance klines CSV (open_time in ms) as BAR_SCHEMA bars."""
    raw = pl.read_csv(real_file(name))
    return raw.select(
        (pl.col("open_time") * 1000).alias("open_us"),
        "open",
        "high",
        "low",
        "close",
        "volume",
        pl.lit(None, dtype=pl.Float64).alias("quote_volume"),
        pl.lit(None, dtype=pl.Int64).alias("trade_count"),
        pl.lit(None, dtype=pl.Float64).alias("taker_buy_volume"),
        pl.lit(False).alias("is_filled"),
    )


def read_real_trades(name: str) -> pl.DataFrame:
    """A raw-trades CSV as TRADE_SCHEMA: exchange time ``trade_time_ms``; buyer-maker means a seller took."""
    raw = pl.read_csv(real_file(name))
    return raw.select(
        (pl.col("trade_time_ms") * 1000).alias("ts_us"),
        "trade_id",
        "price",
        "qty",
        pl.when(pl.col("is_buyer_maker")).then(-1).otherwise(1).cast(pl.Int8).alias("side"),
        pl.lit(False).alias("is_agg"),
    )


def assert_same_prices(ours: pl.DataFrame, theirs: pl.DataFrame) -> int:
    """Every bar of ``ours`` is in ``theirs`` with identical OHLC and volume within 1e-9; returns the count."""
    joined = ours.join(theirs, on="open_us", how="left", suffix="_x")
    missing = joined.filter(pl.col("close_x").is_null())["open_us"].to_list()
    assert not missing, f"bars absent from the exchange file: {missing[:5]}"
    for col in ("open", "high", "low", "close"):
        diff = joined.filter(pl.col(col) != pl.col(f"{col}_x"))
        assert diff.height == 0, f"{col} differs at open_us {diff['open_us'].to_list()[:5]}"
    np.testing.assert_allclose(joined["volume"].to_numpy(), joined["volume_x"].to_numpy(), rtol=1e-9, atol=0)
    return joined.height


@pytest.mark.real
@pytest.mark.parametrize("symbol", ["ETHUSDT", "BTCUSDT"])
def test_real_trades_to_1m_equal_klines(symbol: str) -> None:
    trades = read_real_trades(f"binance_spot_{symbol}_trades_2024-08-08T2354_2024-08-09T0005.csv.gz")
    klines = read_real_klines(f"binance_spot_{symbol}_1m_2024-07-26_2024-08-25.csv.gz")
    minutes = trades_to_bars(trades, Timeframe.M1)
    # the recording starts at 23:54:15 and ends at 00:05:05: its first and last minutes are partial
    complete = minutes.slice(1, minutes.height - 2)
    assert complete["open_us"].to_list() == [1_723_161_300_000_000 + i * US_PER_MINUTE for i in range(10)]
    assert assert_same_prices(complete, klines) == 10
    # through 1s bars: the partial edge minutes are exactly the incomplete ones, the rest agree
    seconds = trades_to_bars(trades, Timeframe.S1)
    via_seconds, report = resample_bars_with_report(seconds, Timeframe.S1, Timeframe.M1)
    assert report.n_dropped == 2 and report.n_empty == 0
    assert_bars_equal(via_seconds, complete)


@pytest.mark.real
@pytest.mark.parametrize("symbol", ["ETHUSDT", "BTCUSDT"])
def test_real_1m_to_1h_equal_klines(symbol: str) -> None:
    minutes = read_real_klines(f"binance_spot_{symbol}_1m_2024-07-26_2024-08-25.csv.gz")
    hours_file = read_real_klines(f"binance_spot_{symbol}_1h_2018-01-01_2026-05-16.csv.gz")
    hours, report = resample_bars_with_report(minutes, Timeframe.M1, Timeframe.H1)
    # independent count of complete hours: hours holding all 60 minutes
    _, per_hour = np.unique(minutes["open_us"].to_numpy() // US_PER_HOUR, return_counts=True)
    assert hours.height == int((per_hour == 60).sum()) == 719
    # the month starts and ends mid-hour (14:16, 14:2x): exactly its first and last hours are incomplete
    assert report.n_incomplete == report.n_dropped == 2
    assert report.n_src_missing == int((60 - per_hour[per_hour < 60]).sum()) > 0
    assert assert_same_prices(hours, hours_file) == 719


@pytest.mark.real
@pytest.mark.parametrize("symbol", ["ETHUSDT", "BTCUSDT"])
def test_real_1h_to_1d_equal_klines_over_complete_days(symbol: str) -> None:
    hours = read_real_klines(f"binance_spot_{symbol}_1h_2018-01-01_2026-05-16.csv.gz")
    days, report = resample_bars_with_report(hours, Timeframe.H1, Timeframe.D1)
    # independent count: days with fewer than 24 hourly bars (exchange outages, and the last, partial day)
    _, per_day = np.unique(hours["open_us"].to_numpy() // US_PER_DAY, return_counts=True)
    assert report.n_incomplete == report.n_dropped == int((per_day < 24).sum()) == 29
    # README: 122 hours lost to outages; the file stops at 18:00 on its last day, 5 more are absent
    assert report.n_src_missing == 122 + 5 and report.n_empty == 0
    files = [f"binance_spot_{symbol}_1d_2020-02-24_2025-11-22.csv.gz"]
    if symbol == "BTCUSDT":
        files.append("binance_spot_BTCUSDT_1d_2017-08-17_2026-01-19.csv.gz")
    for name in files:
        days_file = read_real_klines(name)
        span = days.filter(pl.col("open_us").is_between(days_file["open_us"].min(), days_file["open_us"].max()))
        skipped = days_file.filter(pl.col("open_us").is_in(report.incomplete_open_us.tolist()))
        compared = assert_same_prices(span, days_file)
        assert compared + skipped.height == days_file.height - int(
            (days_file["open_us"] < hours["open_us"].min()).sum()
        )
