"""Importers: every supported layout and container, and every file-level error, on small files in tmp_path."""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import polars as pl
import pytest

from rltrade.data.cleaning import (
    BadRowError,
    CorruptFileError,
    DuplicateConflictError,
    FileFormatError,
    MixedSymbolsError,
    Problem,
    RowRef,
    TimeframeError,
    TimeUnitError,
)
from rltrade.data.importers import (
    FileKind,
    import_file,
    import_files,
    median_half_spread_bps,
    parse_file_name,
    read_book_ticker,
    read_funding,
)
from rltrade.data.schema import BAR_SCHEMA, TRADE_SCHEMA
from rltrade.types import Kind, Timeframe

T0_MS = 1_722_470_400_000  # 2024-08-01 00:00:00 UTC
MINUTE_MS = 60_000


def write(path: Path, lines: list[str], *, header: str | None = None, newline: bool = True) -> Path:
    """Write CSV ``lines`` to ``path``: gzip for ``.gz``, a one-member zip for ``.zip``, else plain."""
    text = "\n".join(([header] if header else []) + lines) + ("\n" if newline else "")
    data = text.encode()
    if path.suffix == ".gz":
        data = gzip.compress(data)
    elif path.suffix == ".zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(path.with_suffix(".csv").name, data)
        data = buf.getvalue()
    path.write_bytes(data)
    return path


def kline_rows(
    n: int, *, start_ms: int = T0_MS, step_ms: int = MINUTE_MS, us: bool = False, cols: int = 12
) -> list[str]:
    """``n`` valid Binance kline rows: open 100+i, high +2, low -1, close +1, volume 10+i."""
    scale = 1000 if us else 1
    rows = []
    for i in range(n):
        t = (start_ms + i * step_ms) * scale
        o = 100.0 + i
        fields = [t, o, o + 2, o - 1, o + 1, 10.0 + i]
        if cols == 12:
            fields += [t + step_ms * scale - 1, (10.0 + i) * o, 5 + i, (10.0 + i) / 2, (10.0 + i) * o / 2, 0]
        rows.append(",".join(str(f) for f in fields))
    return rows


def trade_rows(n: int, *, us: bool = False) -> list[str]:
    """``n`` spot trades (7 columns): id 1000+i, price 50+i, qty 0.5, time T0+i ms, maker on odd ids."""
    scale = 1000 if us else 1
    return [
        f"{1000 + i},{50.0 + i},0.5,{(50.0 + i) * 0.5},{(T0_MS + i) * scale},{'true' if i % 2 else 'false'},true"
        for i in range(n)
    ]


E = TypeVar("E", bound=Exception)


def raised(exc_type: type[E], fn: Callable[..., object], *args: object, **kwargs: object) -> E:
    """The exception of type ``exc_type`` that ``fn(*args, **kwargs)`` raises."""
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    return info.value


# --- good paths: klines -----------------------------------------------------------------------------------


def test_klines_12_columns_no_header_ms(tmp_path: Path) -> None:
    path = write(tmp_path / "ETHUSDT-1m-2024-08-01.csv", kline_rows(3))
    res = import_file(path)
    assert (res.kind, res.symbol, res.timeframe, res.data_kind) == (FileKind.KLINES, "ETHUSDT", Timeframe.M1, Kind.BARS)
    assert res.frame.schema == pl.Schema(BAR_SCHEMA)
    assert res.frame["open_us"].to_list() == [(T0_MS + i * MINUTE_MS) * 1000 for i in range(3)]
    assert res.frame.row(1) == (
        (T0_MS + MINUTE_MS) * 1000,
        101.0,
        103.0,
        100.0,
        102.0,
        11.0,
        11.0 * 101.0,
        6,
        5.5,
        False,
    )
    assert res.report.is_clean and res.report.rows_in == res.report.rows_out == 3


def test_klines_microseconds_zip_equals_milliseconds_csv(tmp_path: Path) -> None:
    ms = import_file(write(tmp_path / "ETHUSDT-1m-2024-08-01.csv", kline_rows(4))).frame
    us = import_file(write(tmp_path / "ETHUSDT-1m-2025-08-01.zip", kline_rows(4, us=True))).frame
    assert us.equals(ms)


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".zip"])
def test_klines_6_columns_with_header_every_container(tmp_path: Path, suffix: str) -> None:
    header = "open_time,open,high,low,close,volume"
    path = write(
        tmp_path / f"binance_spot_BTCUSDT_1h_2024{suffix}", kline_rows(5, step_ms=3_600_000, cols=6), header=header
    )
    res = import_file(path)
    assert (res.symbol, res.timeframe) == ("BTCUSDT", Timeframe.H1)
    assert res.frame.height == 5
    assert res.frame["quote_volume"].null_count() == 5 and res.frame["trade_count"].null_count() == 5
    assert res.frame["close"].to_list() == [101.0, 102.0, 103.0, 104.0, 105.0]


def test_klines_usdm_header_aliases(tmp_path: Path) -> None:
    header = (
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
        "taker_buy_quote_volume,ignore"
    )
    res = import_file(write(tmp_path / "ETHUSDT-1m-2024-08-01.csv", kline_rows(2), header=header))
    assert res.frame["trade_count"].to_list() == [5, 6]
    assert res.frame["taker_buy_volume"].to_list() == [5.0, 5.5]


def test_klines_timeframe_inferred_from_spacing_and_symbol_given(tmp_path: Path) -> None:
    res = import_file(write(tmp_path / "bars.csv", kline_rows(3, step_ms=86_400_000, cols=6)), symbol="eth/usdt")
    assert (res.symbol, res.timeframe) == ("ETHUSDT", Timeframe.D1)


def test_klines_timeframe_and_kind_given(tmp_path: Path) -> None:
    res = import_file(write(tmp_path / "bars.csv", kline_rows(3)), symbol="ETHUSDT", kind="klines", timeframe="1m")
    assert res.timeframe is Timeframe.M1


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "ETHUSDT-1m-2024-08-01.csv"
    path.write_bytes(("\r\n".join(kline_rows(3)) + "\r\n").encode())
    assert import_file(path).frame.equals(import_file(write(tmp_path / "ETHUSDT-1m-x.csv", kline_rows(3))).frame)


def test_last_line_without_newline_but_complete_is_kept(tmp_path: Path) -> None:
    res = import_file(write(tmp_path / "ETHUSDT-1m-2024-08-01.csv", kline_rows(3), newline=False))
    assert res.frame.height == 3 and res.report.is_clean


# --- good paths: trades -----------------------------------------------------------------------------------


@pytest.mark.parametrize("us", [False, True])
def test_spot_trades_no_header(tmp_path: Path, us: bool) -> None:
    res = import_file(write(tmp_path / "ETHUSDT-trades-2024-08-01.csv.gz", trade_rows(4, us=us)))
    assert (res.kind, res.symbol, res.timeframe, res.data_kind) == (FileKind.TRADES, "ETHUSDT", None, Kind.TRADES)
    assert res.frame.schema == pl.Schema(TRADE_SCHEMA)
    assert res.frame["ts_us"].to_list() == [(T0_MS + i) * 1000 for i in range(4)]
    assert res.frame["side"].to_list() == [1, -1, 1, -1]  # buyer maker → aggressor sold → -1
    assert res.frame["trade_id"].to_list() == [1000, 1001, 1002, 1003]
    assert not res.frame["is_agg"].any()


def test_usdm_trades_with_header(tmp_path: Path) -> None:
    rows = [f"{7 + i},2500.5,0.1,250.05,{T0_MS + i},false" for i in range(2)]
    res = import_file(
        write(tmp_path / "ETHUSDT-trades-2024-08-01.zip", rows, header="id,price,qty,quote_qty,time,is_buyer_maker")
    )
    assert res.frame["trade_id"].to_list() == [7, 8] and res.frame["side"].to_list() == [1, 1]


def test_agg_trades_no_header_and_usdm_header(tmp_path: Path) -> None:
    rows = [
        f"{500 + i},{60.0 + i},2.5,{10 + 3 * i},{12 + 3 * i},{T0_MS + 10 * i},{'true' if i else 'false'},true"
        for i in range(3)
    ]
    res = import_file(write(tmp_path / "BTCUSDT-aggTrades-2024-08-01.zip", rows))
    assert res.kind is FileKind.AGG_TRADES and res.frame["is_agg"].all()
    assert res.frame.select("trade_id", "qty", "side").rows() == [(500, 2.5, 1), (501, 2.5, -1), (502, 2.5, -1)]
    header = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
    usdm = import_file(
        write(tmp_path / "agg.csv", [r.rsplit(",", 1)[0] for r in rows], header=header), symbol="BTCUSDT"
    )
    assert usdm.frame.equals(res.frame)


def test_recorded_trades_use_exchange_time_not_recorder_clock(tmp_path: Path) -> None:
    header = "trade_time_ms,event_time_ms,trade_id,price,qty,is_buyer_maker,local_ts_ns"
    rows = [
        "1723161255611,1723161255612,1520538925,2683.80000000,0.00200000,True,1723161254340863867",
        "1723161255700,1723161255701,1520538926,2683.81000000,0.03450000,False,1723161254440864567",
    ]
    res = import_file(write(tmp_path / "binance_spot_ETHUSDT_trades_2024-08-08T2354.csv.gz", rows, header=header))
    assert res.kind is FileKind.RECORDED_TRADES
    assert res.frame["ts_us"].to_list() == [1_723_161_255_611_000, 1_723_161_255_700_000]
    assert res.frame["side"].to_list() == [-1, 1]


def test_recorded_trades_refuse_microseconds_in_ms_column(tmp_path: Path) -> None:
    header = "trade_time_ms,event_time_ms,trade_id,price,qty,is_buyer_maker,local_ts_ns"
    rows = ["1723161255611000,1723161255612,1,2683.8,0.002,True,1723161254340863867"]
    err = raised(TimeUnitError, import_file, write(tmp_path / "binance_spot_ETHUSDT_trades_x.csv", rows, header=header))
    assert (err.line, err.column) == (2, "trade_time_ms")
    assert "is not an epoch between 2001 and 2286 in milliseconds [1e+12, 1e+13)" in str(err)


# --- several files ----------------------------------------------------------------------------------------


def test_import_files_concatenates_dedups_overlap_and_sorts(tmp_path: Path) -> None:
    rows = kline_rows(6)
    late = write(tmp_path / "ETHUSDT-1m-2024-08-02.csv", rows[3:])
    early = write(tmp_path / "ETHUSDT-1m-2024-08-01.csv", rows[:4])  # row 3 overlaps the other file
    res = import_files([late, early])
    assert res.frame.equals(import_file(write(tmp_path / "ETHUSDT-1m-all.csv", rows)).frame)
    rep = res.report
    assert (rep.rows_in, rep.rows_out, rep.n_dropped) == (7, 6, 1)
    assert rep.counts == {Problem.DUPLICATE_EXACT: 1, Problem.OUT_OF_ORDER: 1}
    assert rep.examples[Problem.DUPLICATE_EXACT] == (RowRef(str(early), 4),)
    assert rep.examples[Problem.OUT_OF_ORDER] == (RowRef(str(early), 1),)


def test_import_files_refuses_mixed_symbols(tmp_path: Path) -> None:
    eth = write(tmp_path / "ETHUSDT-1m-2024-08-01.csv", kline_rows(2))
    btc = write(tmp_path / "BTCUSDT-1m-2024-08-02.csv", kline_rows(2, start_ms=T0_MS + 86_400_000))
    err = raised(MixedSymbolsError, import_files, [eth, btc])
    assert f"files disagree on symbol: {eth} (ETHUSDT), {btc} (BTCUSDT)" in str(err)


def test_import_files_refuses_mixed_timeframes(tmp_path: Path) -> None:
    m1 = write(tmp_path / "ETHUSDT-1m-2024-08-01.csv", kline_rows(2))
    h1 = write(tmp_path / "ETHUSDT-1h-2024-08-01.csv", kline_rows(2, step_ms=3_600_000))
    assert "files disagree on timeframe" in str(raised(TimeframeError, import_files, [m1, h1]))


def test_import_files_conflicting_overlap_is_an_error(tmp_path: Path) -> None:
    a = write(tmp_path / "ETHUSDT-1m-a.csv", kline_rows(2))
    b = write(tmp_path / "ETHUSDT-1m-b.csv", [kline_rows(2)[1].replace(",103.0,", ",103.5,", 1)])
    err = raised(DuplicateConflictError, import_files, [a, b])
    assert f"{b}, line 1, column 'high': open_us 2024-08-01T00:01:00.000+00:00 also at {a} line 2" in str(err)


# --- book ticker and funding ------------------------------------------------------------------------------


def test_book_ticker_recorded_and_half_spread(tmp_path: Path) -> None:
    header = "local_ts_ns,update_id,bid_price,bid_qty,ask_price,ask_qty"
    rows = [
        "1723161254024619568,1,99.0,1.0,101.0,2.0",
        "1723161254091857168,2,99.5,1.0,100.5,2.0",
        "1723161254191857168,3,99.9,1.0,100.1,2.0",
    ]
    book = read_book_ticker(write(tmp_path / "binance_spot_ETHUSDT_bookTicker_x.csv.gz", rows, header=header))
    assert book.columns == ["ts_us", "update_id", "bid_price", "bid_qty", "ask_price", "ask_qty"]
    assert book["ts_us"].to_list() == [1723161254024619, 1723161254091857, 1723161254191857]
    assert median_half_spread_bps(book) == pytest.approx(1.0 / 200.0 * 1e4)  # middle row: (100.5-99.5)/200


def test_book_ticker_usdm_dump_layout(tmp_path: Path) -> None:
    header = "update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time"
    book = read_book_ticker(write(tmp_path / "b.csv", [f"5,10.0,1,10.2,1,{T0_MS},{T0_MS + 1}"], header=header))
    assert book.row(0) == (T0_MS * 1000, 5, 10.0, 1.0, 10.2, 1.0)


def test_book_ticker_refuses_crossed_book(tmp_path: Path) -> None:
    header = "local_ts_ns,update_id,bid_price,bid_qty,ask_price,ask_qty"
    path = write(
        tmp_path / "b.csv",
        ["1723161254024619568,1,99.0,1.0,101.0,2.0", "1723161254024619569,2,99.0,1.0,98.0,2.0"],
        header=header,
    )
    err = raised(ValueError, read_book_ticker, path)
    assert (
        str(err)
        == f"{path}, line 3, column 'ask_price': crossed book: ask below bid (1 row(s)). Fix or re-download the file."
    )


def test_funding_recorded_and_dump(tmp_path: Path) -> None:
    rec = read_funding(
        write(tmp_path / "f.csv", [f"{T0_MS},0.0001", f"{T0_MS + 28_800_000},-0.0002"], header="open_time,funding_rate")
    )
    assert rec.rows() == [(T0_MS * 1000, 0.0001), ((T0_MS + 28_800_000) * 1000, -0.0002)]
    dump = read_funding(
        write(tmp_path / "g.csv", [f"{T0_MS},8,0.0001"], header="calc_time,funding_interval_hours,last_funding_rate")
    )
    assert dump.rows() == [(T0_MS * 1000, 0.0001)]
    bad = write(tmp_path / "h.csv", [f"{T0_MS},0.0001", f"{T0_MS},0.0001"], header="open_time,funding_rate")
    assert "line 3, column 'ts_us': time does not increase" in str(raised(ValueError, read_funding, bad))


def test_half_spread_of_empty_book_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        median_half_spread_bps(pl.DataFrame(schema={"bid_price": pl.Float64, "ask_price": pl.Float64}))


# --- file-level errors ------------------------------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "ETHUSDT-1m-2024-08-01.csv"
    path.write_bytes(b"")
    assert (
        str(raised(FileFormatError, import_file, path))
        == f"{path}: file is empty (0 bytes). Re-download or regenerate it."
    )


def test_header_only(tmp_path: Path) -> None:
    path = write(tmp_path / "ETHUSDT-1m-2024-08-01.csv", [], header="open_time,open,high,low,close,volume")
    assert "and no data rows" in str(raised(FileFormatError, import_file, path))


def test_empty_gzip(tmp_path: Path) -> None:
    path = tmp_path / "ETHUSDT-1m-2024-08-01.csv.gz"
    path.write_bytes(gzip.compress(b"\n"))
    assert (
        str(raised(FileFormatError, import_file, path)) == f"{path}: file holds no data. Re-download or regenerate it."
    )


def test_truncated_gzip(tmp_path: Path) -> None:
    path = write(tmp_path / "ETHUSDT-1m-2024-08-01.csv.gz", kline_rows(200))
    path.write_bytes(path.read_bytes()[:-40])
    err = raised(CorruptFileError, import_file, path)
    assert str(err).startswith(f"{path}: gzip data is damaged or truncated (")
    assert str(err).endswith("Re-download the file.")


def test_gz_name_on_plain_text(tmp_path: Path) -> None:
    path = tmp_path / "ETHUSDT-1m-2024-08-01.csv.gz"
    path.write_text("\n".join(kline_rows(2)))
    assert "named .gz but is not gzip data" in str(raised(CorruptFileError, import_file, path))


def test_corrupt_zip(tmp_path: Path) -> None:
    path = write(tmp_path / "ETHUSDT-1m-2024-08-01.zip", kline_rows(50))
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    assert "zip archive is damaged or truncated" in str(raised(CorruptFileError, import_file, path))
    garbage = tmp_path / "ETHUSDT-1m-2024-08-02.zip"
    garbage.write_bytes(b"PK\x03\x04 definitely not a zip")
    assert "zip archive is damaged or truncated" in str(raised(CorruptFileError, import_file, garbage))


def test_zip_with_two_members(tmp_path: Path) -> None:
    path = tmp_path / "ETHUSDT-1m-2024-08-01.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.csv", "1")
        zf.writestr("b.csv", "2")
    assert "zip holds 2 files ['a.csv', 'b.csv'], expected one CSV" in str(raised(FileFormatError, import_file, path))


def test_missing_column_in_header(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ETHUSDT-1m-x.csv",
        [r.rsplit(",", 1)[0] for r in kline_rows(2, cols=6)],
        header="open_time,open,high,low,close",
    )
    err = raised(FileFormatError, import_file, path)
    assert (err.line, err.column) == (1, None)
    assert (
        "header ['open_time', 'open', 'high', 'low', 'close'] is not a known layout (wrong, missing or extra columns)"
        in str(err)
    )
    assert "Expected one of: open_time,open,high,low,close,volume,close_time," in str(err)


def test_wrong_column_name(tmp_path: Path) -> None:
    path = write(tmp_path / "ETHUSDT-1m-x.csv", kline_rows(2, cols=6), header="open_time,open,high,low,close,vol")
    assert "is not a known layout" in str(raised(FileFormatError, import_file, path))


def test_headerless_wrong_column_count(tmp_path: Path) -> None:
    path = write(tmp_path / "ETHUSDT-1m-x.csv", [r + ",1" for r in kline_rows(2, cols=6)])
    err = raised(FileFormatError, import_file, path)
    assert "fits no headerless klines layout" in str(err) and err.line == 1


def test_headerless_ambiguous_layout_needs_kind(tmp_path: Path) -> None:
    # Empty 6th cell: a spot trade (bool there) and a USDⓈ-M aggTrade (int there) both fit.
    path = write(tmp_path / "x.csv", [f"1,2.0,3.0,4,{T0_MS},,true"])
    assert "fits several layouts (trades, aggTrades)" in str(raised(FileFormatError, import_file, path, symbol="X"))


def test_non_numeric_cell(tmp_path: Path) -> None:
    rows = kline_rows(4)
    rows[2] = rows[2].replace("102.0", "1O2.0", 1)  # letter O for a zero
    path = write(tmp_path / "ETHUSDT-1m-x.csv", rows)
    err = raised(FileFormatError, import_file, path)
    assert str(err) == (
        f"{path}, line 3, column 'open': cannot read '1O2.0' as a number. "
        "The cell is damaged or the file is not this layout; fix or re-download it."
    )


def test_non_boolean_cell(tmp_path: Path) -> None:
    rows = trade_rows(3)
    rows[1] = rows[1].replace("true,true", "yes,true")
    err = raised(FileFormatError, import_file, write(tmp_path / "ETHUSDT-trades-x.csv", rows))
    assert (err.line, err.column) == (2, "is_buyer_maker") and "cannot read 'yes' as true/false" in str(err)


def test_short_line_in_the_middle(tmp_path: Path) -> None:
    rows = kline_rows(4)
    rows[1] = ",".join(rows[1].split(",")[:9])
    err = raised(FileFormatError, import_file, write(tmp_path / "ETHUSDT-1m-x.csv", rows))
    assert err.line == 2 and "9 fields where the layout has 12" in str(err)


def test_long_line_in_the_middle(tmp_path: Path) -> None:
    rows = kline_rows(4)
    rows[2] += ",7"
    err = raised(FileFormatError, import_file, write(tmp_path / "ETHUSDT-1m-x.csv", rows))
    assert err.line == 3 and "13 fields where the layout has 12" in str(err)


@pytest.mark.parametrize("cut", [",4", "tr"])
def test_truncated_last_line(tmp_path: Path, cut: str) -> None:
    rows = trade_rows(3)
    rows[-1] = rows[-1][: rows[-1].index(",0.5,") + 5] + cut  # '…,0.5,,4' parses with nulls; '…,0.5,tr' fails to parse
    path = write(tmp_path / "ETHUSDT-trades-x.csv", rows, newline=False)
    res = import_file(path)
    assert res.frame["trade_id"].to_list() == [1000, 1001]
    assert res.report.counts == {Problem.TRUNCATED_LAST_LINE: 1}
    assert res.report.examples == {Problem.TRUNCATED_LAST_LINE: (RowRef(str(path), 3),)}
    err = raised(BadRowError, import_file, path, policy="strict")
    assert str(err) == (
        f"{path}, line 3: last line is cut short (fewer fields and no final newline). "
        "Fix the file, or import with policy='repair' to drop such lines (counted)."
    )


def test_blank_lines(tmp_path: Path) -> None:
    rows = kline_rows(4, cols=6)
    path = write(
        tmp_path / "ETHUSDT-1m-x.csv",
        [rows[0], "", rows[1], rows[2], "", rows[3]],
        header="open_time,open,high,low,close,volume",
    )
    res = import_file(path)
    assert res.frame.height == 4
    assert (res.report.rows_in, res.report.counts) == (6, {Problem.BLANK_LINE: 2})
    assert res.report.examples[Problem.BLANK_LINE] == (RowRef(str(path), 3), RowRef(str(path), 6))
    assert raised(BadRowError, import_file, path, policy="strict").line == 3


def test_kind_contradicts_file_name(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ETHUSDT-trades-x.csv", kline_rows(2, cols=6), header="open_time,open,high,low,close,volume"
    )
    assert "the header is a klines layout but the file name says trades" in str(
        raised(FileFormatError, import_file, path)
    )
    err = raised(FileFormatError, import_file, path, kind="aggTrades")
    assert "the file name says trades but kind='aggTrades' was given" in str(err)
    anon = write(tmp_path / "x.csv", kline_rows(2, cols=6), header="open_time,open,high,low,close,volume")
    err = raised(FileFormatError, import_file, anon, kind="trades", symbol="ETHUSDT")
    assert "line 1: the header is a klines layout but kind='trades' was given" in str(err)


def test_book_ticker_file_given_to_import_file(tmp_path: Path) -> None:
    path = write(tmp_path / "binance_spot_ETHUSDT_bookTicker_x.csv", ["1,2"])
    assert "Read it with read_book_ticker()" in str(raised(FileFormatError, import_file, path))


def test_symbol_given_contradicts_name_and_missing_symbol(tmp_path: Path) -> None:
    path = write(tmp_path / "ETHUSDT-1m-x.csv", kline_rows(2))
    err = raised(MixedSymbolsError, import_file, path, symbol="BTCUSDT")
    assert "the file name says ETHUSDT but symbol='BTCUSDT' was given" in str(err)
    anon = write(tmp_path / "bars.csv", kline_rows(2))
    assert "Pass symbol=" in str(raised(FileFormatError, import_file, anon))


def test_timeframe_checks(tmp_path: Path) -> None:
    named_1h = write(tmp_path / "ETHUSDT-1h-x.csv", kline_rows(3))
    assert "bars are mostly 1m apart but the file name says 1h" in str(raised(TimeframeError, import_file, named_1h))
    named_1m = write(tmp_path / "ETHUSDT-1m-x.csv", kline_rows(3))
    assert "the file name says 1m but timeframe='1h' was given" in str(
        raised(TimeframeError, import_file, named_1m, timeframe="1h")
    )
    five = write(tmp_path / "ETHUSDT-5m-x.csv", kline_rows(3, step_ms=300_000))
    assert "the file name says 5m, which rltrade does not handle" in str(raised(TimeframeError, import_file, five))
    spaced = write(tmp_path / "bars.csv", kline_rows(3, step_ms=300_000))
    assert "mostly 5m apart, which is not a supported timeframe" in str(
        raised(TimeframeError, import_file, spaced, symbol="ETHUSDT")
    )
    one = write(tmp_path / "one.csv", kline_rows(1))
    assert "cannot infer the timeframe from a single bar" in str(raised(TimeframeError, import_file, one, symbol="X"))
    assert import_file(one, symbol="X", timeframe="1m").frame.height == 1


def test_close_time_must_close_the_bar(tmp_path: Path) -> None:
    rows = kline_rows(3)
    f = rows[1].split(",")
    f[6] = str(int(f[6]) + 1)
    rows[1] = ",".join(f)
    err = raised(TimeframeError, import_file, write(tmp_path / "ETHUSDT-1m-x.csv", rows))
    assert (err.line, err.column) == (2, "close_time")
    assert "does not close a 1m bar opened at 2024-08-01T00:01:00.000+00:00 (1 such row(s))" in str(err)


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="policy must be 'repair' or 'strict'"):
        import_file("x.csv", policy="lenient")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown kind 'bars'"):
        import_file("x.csv", kind="bars")
    with pytest.raises(ValueError, match="unknown timeframe '5m'"):
        import_file("x.csv", timeframe="5m")


def test_every_row_dropped_is_an_error(tmp_path: Path) -> None:
    rows = [r.replace(",0.5,", ",-0.5,") for r in trade_rows(2)]
    err = raised(FileFormatError, import_file, write(tmp_path / "ETHUSDT-trades-x.csv", rows))
    assert "no valid rows left" in str(err) and "negative_qty" in str(err)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ETHUSDT-1m-2024-08-01.zip", ("ETHUSDT", "1m", False)),
        ("BTCUSDT-aggTrades-2024-08.zip", ("BTCUSDT", "aggTrades", False)),
        ("binance_spot_ETHUSDT_1m_2024-07-26_2024-08-25.csv.gz", ("ETHUSDT", "1m", True)),
        ("binance_usdm_BTCUSDT_trades_2024-08-08T2354.csv.gz", ("BTCUSDT", "trades", True)),
        ("prices.csv", (None, None, False)),
    ],
)
def test_parse_file_name(name: str, expected: tuple[object, ...]) -> None:
    assert tuple(parse_file_name(name)) == expected
