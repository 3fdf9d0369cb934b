"""Cleaning: every bad-value case as its own small file (exact counts under repair, exact error under strict),
time-unit mix-ups, the frame-level API, and the report's bookkeeping."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rltrade.data.cleaning import (
    BadRowError,
    CleaningReport,
    DuplicateConflictError,
    FileFormatError,
    MixedSymbolsError,
    Policy,
    Problem,
    RowRef,
    TimeframeError,
    TimeUnitError,
    clean_bars,
    clean_trades,
    detect_time_unit,
)
from rltrade.data.importers import import_file
from rltrade.data.schema import BAR_SCHEMA, TRADE_SCHEMA
from rltrade.types import Timeframe

T0_MS = 1_722_470_400_000  # 2024-08-01 00:00:00 UTC
MINUTE_MS = 60_000
POLICIES: tuple[Policy, ...] = ("repair", "strict")
REPAIR_HINT = "Fix the file, or import with policy='repair' to drop or reorder such rows (counted)."


def write(path: Path, lines: list[str]) -> Path:
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def trades(**changes: str) -> list[str]:
    """Six valid spot trades (lines 1–6), with ``changes`` like ``line3="price=nan"`` applied."""
    cols = ["id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match"]
    rows = [[str(100 + i), str(50.0 + i), "0.5", "25.0", str(T0_MS + i), "true", "true"] for i in range(6)]
    for key, change in changes.items():
        line = int(key.removeprefix("line"))
        for part in change.split(";"):
            col, value = part.split("=")
            rows[line - 1][cols.index(col)] = value
    return [",".join(r) for r in rows]


def klines(**changes: str) -> list[str]:
    """Six valid 12-column 1m klines (lines 1–6): open 100+i, high +2, low -1, close +1, volume 10, taker 4."""
    cols = ["open_time", "open", "high", "low", "close", "volume", "close_time", "quote", "count", "taker", "tq", "ig"]
    rows = []
    for i in range(6):
        t, o = T0_MS + i * MINUTE_MS, 100.0 + i
        rows.append([str(v) for v in (t, o, o + 2, o - 1, o + 1, 10.0, t + MINUTE_MS - 1, 1000.0, 7, 4.0, 400.0, 0)])
    for key, change in changes.items():
        line = int(key.removeprefix("line"))
        for part in change.split(";"):
            col, value = part.split("=")
            rows[line - 1][cols.index(col)] = value
    return [",".join(r) for r in rows]


def trades_file(tmp_path: Path, **changes: str) -> Path:
    return write(tmp_path / "ETHUSDT-trades-2024-08-01.csv", trades(**changes))


def klines_file(tmp_path: Path, **changes: str) -> Path:
    return write(tmp_path / "ETHUSDT-1m-2024-08-01.csv.gz", klines(**changes))


def strict_error(path: Path) -> BadRowError:
    """The error importing ``path`` with ``policy="strict"`` raises."""
    with pytest.raises(BadRowError) as info:
        import_file(path, policy="strict")
    return info.value


# --- trades: bad values -----------------------------------------------------------------------------------


def test_trade_prices_nan_inf_zero_negative(tmp_path: Path) -> None:
    path = trades_file(tmp_path, line2="price=nan", line3="price=inf", line4="price=0", line5="price=-5")
    res = import_file(path)
    assert res.frame["trade_id"].to_list() == [100, 105]
    assert res.report.counts == {Problem.NON_FINITE_PRICE: 2, Problem.NON_POSITIVE_PRICE: 2}
    assert res.report.examples[Problem.NON_FINITE_PRICE] == (RowRef(str(path), 2), RowRef(str(path), 3))
    assert res.report.examples[Problem.NON_POSITIVE_PRICE] == (RowRef(str(path), 4), RowRef(str(path), 5))
    err = strict_error(path)
    assert str(err) == (
        f"{path}, line 2, column 'price': price is NaN or infinite (value nan); 3 more row(s) with problems. "
        + REPAIR_HINT
    )
    assert (err.problem, err.line, err.column) == (Problem.NON_FINITE_PRICE, 2, "price")


def test_trade_quantities_nan_negative_zero(tmp_path: Path) -> None:
    path = trades_file(tmp_path, line1="qty=NaN", line4="qty=-0.1", line6="qty=0")
    res = import_file(path)
    assert res.report.counts == {Problem.NON_FINITE_QTY: 1, Problem.NEGATIVE_QTY: 1, Problem.ZERO_QTY: 1}
    assert res.frame["trade_id"].to_list() == [101, 102, 104]
    err = strict_error(path)
    assert (err.line, err.column) == (1, "qty") and "quantity is NaN or infinite" in str(err)


def test_trade_missing_values(tmp_path: Path) -> None:
    path = trades_file(tmp_path, line2="price=", line3="is_buyer_maker=", line4="time=")
    res = import_file(path)
    assert res.report.counts == {Problem.MISSING_VALUE: 3}
    assert res.report.examples[Problem.MISSING_VALUE] == tuple(RowRef(str(path), n) for n in (2, 3, 4))
    assert "line 2, column 'price': empty cell in a required column (value None)" in str(strict_error(path))


def test_row_with_several_problems_counts_once_under_the_first(tmp_path: Path) -> None:
    res = import_file(trades_file(tmp_path, line3="price=nan;qty=-1"))
    assert res.report.counts == {Problem.NON_FINITE_PRICE: 1}
    assert (res.report.rows_in, res.report.rows_out, res.report.n_dropped) == (6, 5, 1)


def test_trade_exact_duplicates(tmp_path: Path) -> None:
    rows = trades()
    path = write(tmp_path / "ETHUSDT-trades-x.csv", [*rows[:3], rows[1], *rows[3:], rows[1]])
    res = import_file(path)
    assert res.frame["trade_id"].to_list() == [100, 101, 102, 103, 104, 105]
    assert res.report.counts == {Problem.DUPLICATE_EXACT: 2}
    assert res.report.examples[Problem.DUPLICATE_EXACT] == (RowRef(str(path), 4), RowRef(str(path), 8))
    assert str(strict_error(path)) == (
        f"{path}, line 4, column 'trade_id': exact duplicate of {path} line 2 (trade_id 101). " + REPAIR_HINT
    )


def test_trade_conflicting_duplicates_are_an_error_under_both_policies(tmp_path: Path) -> None:
    rows = trades()
    path = write(tmp_path / "ETHUSDT-trades-x.csv", [*rows, rows[2].replace(",52.0,", ",52.5,")])
    for policy in POLICIES:
        with pytest.raises(DuplicateConflictError) as info:
            import_file(path, policy=policy)
        assert str(info.value) == (
            f"{path}, line 7, column 'price': trade_id 102 also at {path} line 3 with different values "
            "(price: 52.0 there, 52.5 here). Keep the correct row and delete the other; "
            "no copy can be chosen automatically."
        )


def test_trades_out_of_order(tmp_path: Path) -> None:
    rows = trades()
    path = write(tmp_path / "ETHUSDT-trades-x.csv", [rows[0], rows[2], rows[1], rows[5], rows[3], rows[4]])
    res = import_file(path)
    assert res.frame["trade_id"].to_list() == [100, 101, 102, 103, 104, 105]
    assert res.report.counts == {Problem.OUT_OF_ORDER: 2} and res.report.n_dropped == 0
    assert res.report.examples[Problem.OUT_OF_ORDER] == (RowRef(str(path), 3), RowRef(str(path), 5))
    assert str(strict_error(path)) == (
        f"{path}, line 3, column 'ts_us': ts_us 2024-08-01T00:00:00.001+00:00 is below line 2's "
        "2024-08-01T00:00:00.002+00:00. Sort the file by time, or import with policy='repair' to sort it (counted)."
    )


def test_same_time_trades_are_ordered_by_id(tmp_path: Path) -> None:
    path = trades_file(tmp_path, line1=f"time={T0_MS + 1}", line2=f"time={T0_MS + 1};id=99")
    res = import_file(path)
    assert res.frame["trade_id"].to_list()[:2] == [99, 100]
    assert res.report.counts == {Problem.OUT_OF_ORDER: 1}
    err = strict_error(path)
    assert (err.line, err.column) == (2, "trade_id")
    assert "line 2, column 'trade_id': at the same ts_us, trade_id 99 is below line 1's 100." in str(err)


# --- bars: bad values -------------------------------------------------------------------------------------


def test_bar_prices_nan_inf_zero_negative(tmp_path: Path) -> None:
    path = klines_file(tmp_path, line1="high=inf", line2="close=nan", line3="low=0", line4="open=-1")
    res = import_file(path)
    assert res.report.counts == {Problem.NON_FINITE_PRICE: 2, Problem.NON_POSITIVE_PRICE: 2}
    assert res.frame.height == 2
    err = strict_error(path)
    assert (err.line, err.column) == (1, "high") and "price is NaN or infinite (value inf)" in str(err)


def test_ohlc_inconsistencies(tmp_path: Path) -> None:
    # line 2: high < low; line 3: open above high; line 5: close below low.
    path = klines_file(tmp_path, line2="high=99.0", line3="open=106.0", line5="close=100.0")
    res = import_file(path)
    assert res.report.counts == {Problem.OHLC_INCONSISTENT: 3}
    assert res.report.examples[Problem.OHLC_INCONSISTENT] == tuple(RowRef(str(path), n) for n in (2, 3, 5))
    assert res.frame["open"].to_list() == [100.0, 103.0, 105.0]
    assert str(strict_error(path)) == (
        f"{path}, line 2, column 'high': OHLC inconsistent (high < low, or open/close outside [low, high]) "
        "(value 99.0); 2 more row(s) with problems. " + REPAIR_HINT
    )
    assert strict_error(klines_file(tmp_path, line3="open=106.0")).column == "open"


def test_bar_volumes(tmp_path: Path) -> None:
    path = klines_file(
        tmp_path, line1="volume=-1", line2="volume=nan", line3="taker=11.0", line4="count=-3", line5="quote=-2"
    )
    res = import_file(path)
    assert res.report.counts == {
        Problem.NEGATIVE_VOLUME: 3,
        Problem.NON_FINITE_VOLUME: 1,
        Problem.TAKER_BUY_EXCEEDS_VOLUME: 1,
    }
    assert res.frame.height == 1
    err = strict_error(path)
    assert (err.problem, err.line, err.column) == (Problem.NEGATIVE_VOLUME, 1, "volume")
    assert strict_error(klines_file(tmp_path, line4="count=-3")).column == "trade_count"


def test_zero_volume_bar_is_valid(tmp_path: Path) -> None:
    res = import_file(klines_file(tmp_path, line2="volume=0;taker=0;quote=0;count=0"))
    assert res.report.is_clean and res.frame["volume"][1] == 0.0


def test_bar_duplicates_exact_and_conflicting(tmp_path: Path) -> None:
    rows = klines()
    exact = write(tmp_path / "ETHUSDT-1m-a.csv", [*rows, rows[0]])
    res = import_file(exact)
    assert res.report.counts == {Problem.DUPLICATE_EXACT: 1} and res.frame.height == 6
    assert res.report.examples[Problem.DUPLICATE_EXACT] == (RowRef(str(exact), 7),)
    conflict = write(tmp_path / "ETHUSDT-1m-b.csv", [*rows, rows[4].replace(",10.0,", ",10.5,")])
    with pytest.raises(DuplicateConflictError) as info:
        import_file(conflict)
    assert str(info.value).startswith(
        f"{conflict}, line 7, column 'volume': open_us 2024-08-01T00:04:00.000+00:00 also at {conflict} line 5 "
        "with different values (volume: 10.0 there, 10.5 here)."
    )


def test_bars_out_of_order(tmp_path: Path) -> None:
    rows = klines()
    path = write(tmp_path / "ETHUSDT-1m-x.csv", [rows[5], *rows[:5]])
    res = import_file(path)
    assert res.report.counts == {Problem.OUT_OF_ORDER: 1}
    assert res.frame["open"].to_list() == [100.0, 101.0, 102.0, 103.0, 104.0, 105.0]
    assert strict_error(path).line == 2


def test_bar_off_the_timeframe_grid(tmp_path: Path) -> None:
    path = klines_file(
        tmp_path, line4=f"open_time={T0_MS + 3 * MINUTE_MS + 30_000};close_time={T0_MS + 4 * MINUTE_MS + 29_999}"
    )
    for policy in POLICIES:
        with pytest.raises(TimeframeError) as info:
            import_file(path, policy=policy)
        assert str(info.value) == (
            f"{path}, line 4, column 'open_us': bar open time 2024-08-01T00:03:30.000+00:00 is not on the 1m grid "
            "(not a multiple of 1m); 1 such bar(s). Check that the file holds 1m bars, or pass the right timeframe."
        )


# --- time units -------------------------------------------------------------------------------------------


def test_ms_and_us_mixed_in_one_file(tmp_path: Path) -> None:
    t3 = (T0_MS + 3 * MINUTE_MS) * 1000
    path = klines_file(tmp_path, line4=f"open_time={t3};close_time={t3 + MINUTE_MS * 1000 - 1}")
    for policy in POLICIES:
        with pytest.raises(TimeUnitError) as info:
            import_file(path, policy=policy)
        assert str(info.value) == (
            f"{path}, column 'open_time': timestamps of different units in one column: 5 in milliseconds "
            "(first at line 1), 1 in microseconds (first at line 4). "
            "Binance spot dumps switched from ms to µs in 2025; import such files separately."
        )


@pytest.mark.parametrize("value", ["172247040000000", "1722470400"])  # between ms and µs; seconds
def test_ambiguous_time_unit(tmp_path: Path, value: str) -> None:
    path = trades_file(tmp_path, line2=f"time={value}")
    with pytest.raises(TimeUnitError) as info:
        import_file(path)
    assert str(info.value) == (
        f"{path}, line 2, column 'time': timestamp {value} is not an epoch between 2001 and 2286 in "
        "milliseconds [1e+12, 1e+13), microseconds [1e+15, 1e+16): the unit is ambiguous. "
        "Check the column holds UTC epoch times in one of those units (seconds are not accepted)."
    )


def test_close_time_in_another_unit(tmp_path: Path) -> None:
    rows = []
    for row in klines():
        f = row.split(",")
        f[6] = str(int(f[6]) * 1000)  # close_time in µs, open_time still in ms
        rows.append(",".join(f))
    with pytest.raises(TimeUnitError, match="close_time is in us but open_time in ms"):
        import_file(write(tmp_path / "ETHUSDT-1m-x.csv", rows))


def test_clean_refuses_a_frame_in_milliseconds() -> None:
    frame = pl.DataFrame(
        {"open_us": [T0_MS], "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0], "volume": [0.0]}
    )
    with pytest.raises(TimeUnitError, match=r"<frame>, line 1, column 'open_us': timestamp 1722470400000"):
        clean_bars(frame)


def test_detect_time_unit_ns() -> None:
    values = pl.Series([1_723_161_254_024_619_568])
    assert detect_time_unit(values, pl.Series([2]), source="s", column="c", allowed=("ns",)) == "ns"


# --- frame API, symbols, columns --------------------------------------------------------------------------


def trade_frame(n: int = 4) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts_us": [(T0_MS + i) * 1000 for i in range(n)],
            "trade_id": list(range(n)),
            "price": [10.0] * n,
            "qty": [1.0] * n,
            "side": [1] * n,
        }
    )


def test_clean_trades_on_a_bare_frame_reports_row_positions() -> None:
    frame = trade_frame().with_columns(price=pl.Series([10.0, -1.0, 10.0, float("nan")]))
    out, report = clean_trades(frame, sources=("ccxt:ETHUSDT",))
    assert out.schema == pl.Schema(TRADE_SCHEMA)  # is_agg added, no bookkeeping columns
    assert out["trade_id"].to_list() == [0, 2]
    assert report.examples == {
        Problem.NON_POSITIVE_PRICE: (RowRef("ccxt:ETHUSDT", 2),),
        Problem.NON_FINITE_PRICE: (RowRef("ccxt:ETHUSDT", 4),),
    }


def test_clean_keeps_bookkeeping_columns_when_given() -> None:
    frame = trade_frame().with_columns(_line=pl.Series([10, 11, 12, 13]), _file=pl.lit(0))
    out, _ = clean_trades(frame)
    assert out["_line"].to_list() == [10, 11, 12, 13]


def test_mixed_symbols_in_a_frame() -> None:
    frame = trade_frame().with_columns(symbol=pl.Series(["ETHUSDT", "ETHUSDT", "BTCUSDT", "ETHUSDT"]))
    with pytest.raises(MixedSymbolsError) as info:
        clean_trades(frame)
    assert str(info.value) == (
        "<frame>, column 'symbol': 2 symbols in one trades frame: ['BTCUSDT', 'ETHUSDT']. "
        "Import each symbol separately."
    )
    out, _ = clean_trades(trade_frame().with_columns(symbol=pl.lit("ETHUSDT")))
    assert "symbol" not in out.columns


def test_missing_columns_in_a_frame() -> None:
    with pytest.raises(FileFormatError, match=r"missing column\(s\) \['qty'\]"):
        clean_trades(trade_frame().drop("qty"))
    with pytest.raises(FileFormatError, match="cannot be cast"):
        clean_trades(trade_frame().with_columns(price=pl.lit("ten")))


def test_clean_bars_checks_the_timeframe_grid() -> None:
    frame = pl.DataFrame(
        {
            "open_us": [T0_MS * 1000 + i * 60_000_000 for i in range(3)],
            "open": 1.0,
            "high": 1.0,
            "low": 1.0,
            "close": 1.0,
            "volume": 1.0,
        }
    )
    out, _ = clean_bars(frame, timeframe=Timeframe.M1)
    assert out.schema == pl.Schema(BAR_SCHEMA) and not out["is_filled"].any()
    with pytest.raises(TimeframeError, match=r"line 2, column 'open_us': bar open time .* is not on the 1h grid"):
        clean_bars(frame, timeframe=Timeframe.H1)


def test_random_corruption_is_fully_accounted() -> None:
    """Seeded: corrupt random cells of 2,000 bars; every dropped row is counted and every kept row is valid."""
    rng = np.random.default_rng(7)
    n = 2000
    base = 100.0 + rng.random(n)
    frame = pl.DataFrame(
        {
            "open_us": (T0_MS + MINUTE_MS * rng.permutation(n)) * 1000,
            "open": base,
            "high": base + 1,
            "low": base - 1,
            "close": base,
            "volume": rng.random(n),
        }
    )
    bad = {"open": np.nan, "high": -1.0, "low": np.inf, "close": 1e9, "volume": -5.0}
    cols = {c: frame[c].to_numpy().copy() for c in bad}
    for c, value in bad.items():
        cols[c][rng.choice(n, 40, replace=False)] = value
    dirty = frame.with_columns(**{c: pl.Series(v) for c, v in cols.items()})
    dirty = pl.concat([dirty, dirty.sample(30, seed=1)])  # exact duplicates
    out, report = clean_bars(dirty, timeframe=Timeframe.M1)
    assert report.rows_in == dirty.height == report.rows_out + report.n_dropped == out.height + report.n_dropped
    assert report.counts[Problem.OUT_OF_ORDER] > 0
    assert out["open_us"].is_sorted() and out["open_us"].n_unique() == out.height
    assert out.filter((pl.col("low") <= 0) | (pl.col("high") < pl.col("close")) | (pl.col("volume") < 0)).is_empty()
    assert all(np.isfinite(out.select("open", "high", "low", "close").to_numpy()).ravel())


# --- the report -------------------------------------------------------------------------------------------


def test_report_summary_text(tmp_path: Path) -> None:
    path = trades_file(tmp_path, line2="price=nan", line5="qty=0")
    assert import_file(path).report.summary() == (
        f"{path}: 6 rows in, 4 out, 2 dropped\n"
        f"  non_finite_price                   1 dropped   price is NaN or infinite; e.g. {path}:2\n"
        f"  zero_qty                           1 dropped   quantity is zero; e.g. {path}:5"
    )
    clean = import_file(trades_file(tmp_path))
    assert clean.report.summary() == f"{clean.report.sources[0]}: 6 rows in, 6 out, 0 dropped; nothing changed"


def test_report_arithmetic() -> None:
    a = CleaningReport(("a",), 10, 8, {Problem.ZERO_QTY: 2}, {Problem.ZERO_QTY: (RowRef("a", 3), RowRef("a", 4))})
    b = CleaningReport(("b",), 5, 5, {Problem.OUT_OF_ORDER: 1}, {Problem.OUT_OF_ORDER: (RowRef("b", 2),)})
    both = CleaningReport.merged([a, b])
    assert (both.sources, both.rows_in, both.rows_out, both.n_dropped) == (("a", "b"), 15, 13, 2)
    later = CleaningReport(("a", "b"), 13, 12, {Problem.ZERO_QTY: 1}, {Problem.ZERO_QTY: (RowRef("b", 9),)})
    total = both.then(later)
    assert (total.rows_in, total.rows_out, total.counts) == (15, 12, {Problem.ZERO_QTY: 3, Problem.OUT_OF_ORDER: 1})
    assert total.examples[Problem.ZERO_QTY] == (RowRef("a", 3), RowRef("a", 4), RowRef("b", 9))
    with pytest.raises(RuntimeError, match="10 rows in != 9 out"):
        CleaningReport(("a",), 10, 9)
    with pytest.raises(RuntimeError, match="stage has 5 rows in"):
        a.then(b)


# --- times in the future ----------------------------------------------------------------------------------


def test_bar_dated_2100_is_a_counted_bad_row_or_refused(tmp_path: Path) -> None:
    far = str(4_102_444_800_000)  # 2100-01-01 00:00 UTC, in ms
    path = klines_file(tmp_path, line6=f"open_time={far};close_time={int(far) + MINUTE_MS - 1}")
    res = import_file(path)
    assert res.report.counts == {Problem.FUTURE_TIME: 1}
    assert res.report.examples[Problem.FUTURE_TIME] == (RowRef(str(path), 6),)
    assert res.frame.height == 5
    err = strict_error(path)
    assert (err.line, err.column) == (6, "open_us") and "later than now" in str(err)


def test_future_time_uses_the_given_clock_with_a_small_tolerance() -> None:
    frame = trade_frame(4).with_columns(ts_us=T0_MS * 1000 + pl.int_range(4) * 3_600_000_000)  # hourly
    t = frame["ts_us"].to_list()
    within = clean_trades(frame, now_us=t[3] - 60_000_000)  # one minute behind the last trade: clock skew
    assert within.report.counts == {}
    past = clean_trades(frame, now_us=t[1] - 10 * 60_000_000)  # ten minutes before trade 2
    assert past.report.counts == {Problem.FUTURE_TIME: 3}
    assert past.frame.height == 1
    with pytest.raises(BadRowError, match="later than now"):
        clean_trades(frame, now_us=t[1], policy="strict")
