"""freqtrade data files: names, the four formats, resampling of other spacings, futures folders, funding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from rltrade.data.cleaning import FileFormatError
from rltrade.data.freqtrade import import_candles, import_trades, parse_name, read_candles
from rltrade.data.freqtrade_job import funding_path, import_freqtrade
from rltrade.data.importers import import_file, read_funding
from rltrade.data.store import DatasetKey, Store
from rltrade.types import US_PER_HOUR, US_PER_MINUTE, Kind, Timeframe
from tests.support.freqtrade_files import T0_MS, candles, write
from tests.support.real_data import FILES, require_real

ALL_TF = (Timeframe.S1, Timeframe.M1, Timeframe.H1, Timeframe.D1)


def test_names_say_symbol_market_timeframe_and_role() -> None:
    spot = parse_name(Path("ETH_USDT-1m.feather"))
    assert spot is not None and (spot.symbol, spot.futures, spot.role, spot.fmt) == (
        "ETHUSDT",
        False,
        "bars",
        "feather",
    )
    assert spot.spacing is not None and spot.spacing.timeframe is Timeframe.M1
    fut = parse_name(Path("ETH_USDT_USDT-1h-futures.feather"))
    assert fut is not None and fut.futures and fut.role == "bars" and fut.candle == "futures"
    five = parse_name(Path("BTC_USDT-5m.json.gz"))
    assert (
        five is not None and five.fmt == "jsongz" and five.spacing is not None and five.spacing.us == 5 * US_PER_MINUTE
    )
    assert five.spacing.timeframe is None
    roles = {n: getattr(parse_name(Path(n)), "role", None) for n in (
        "ETH_USDT_USDT-8h-funding_rate.feather", "ETH_USDT_USDT-1h-mark.feather", "ETH_USDT_USDT-1h-index.parquet",
        "ETH_USDT-trades.feather", "ETH_USDT_USDT-trades.jsongz", "ETHUSDT-1m-2024-08.zip", "notes.txt",
    )}  # fmt: skip
    assert list(roles.values()) == ["funding", "skipped", "skipped", "trades", "trades", None, None]


@pytest.mark.parametrize("ext", ["feather", "parquet", "json", "json.gz", "jsongz"])
def test_every_format_gives_the_same_bars(tmp_path: Path, ext: str) -> None:
    frame = candles(500, 60_000, seed=1).with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(0.0).otherwise(pl.col("volume")).alias("volume")
    )
    info = parse_name(write(frame, tmp_path / f"ETH_USDT-1m.{ext}"))
    assert info is not None
    result = import_candles(info, ALL_TF)
    bars = result.bars[Timeframe.M1]
    assert list(result.bars) == [Timeframe.M1] and result.cleaning.is_clean
    assert bars["open_us"].to_list() == [(T0_MS + 60_000 * i) * 1000 for i in range(500)]
    assert bars["close"].to_list() == frame["close"].to_list()
    assert bars["is_filled"].sum() == 1 and bars["quote_volume"].null_count() == 500


def test_5m_file_gives_complete_1h_and_1d_bars_never_1m(tmp_path: Path) -> None:
    n = 288 * 2 + 30  # two whole days and 2.5 hours
    frame = candles(n, 300_000, seed=2).filter(pl.int_range(pl.len()) != 40)  # one 5m bar missing (hour 3)
    info = parse_name(write(frame, tmp_path / "ETH_USDT-5m.feather"))
    assert info is not None
    result = import_candles(info, ALL_TF)

    assert set(result.bars) == {Timeframe.H1, Timeframe.D1}
    hours = result.bars[Timeframe.H1]
    # 51 hours started; hour 3 lost a bar and the last one has half its bars: both dropped and counted.
    assert hours.height == 49 and 3 * US_PER_HOUR + T0_MS * 1000 not in hours["open_us"].to_list()
    h1 = next(r for r in result.resampled if r.dst is Timeframe.H1)
    assert (h1.n_dropped, h1.n_src_missing) == (2, 1 + 6)
    days = result.bars[Timeframe.D1]
    assert days.height == 1  # day 1 is missing the 5m bar; day 3 has only 2.5 hours
    day2 = frame.filter(pl.col("date").dt.day() == 2)
    assert days.row(0, named=True)["high"] == day2["high"].max()
    assert days.row(0, named=True)["volume"] == pytest.approx(day2["volume"].sum())


def test_week_file_is_skipped_when_no_timeframe_is_a_multiple(tmp_path: Path) -> None:
    write(candles(10, 7 * 86_400_000, seed=3), tmp_path / "ETH_USDT-1w.feather")
    report = import_freqtrade([tmp_path], Store(tmp_path / "s"), exchange="binance", timeframes=ALL_TF)
    assert [p.name for p in (p for paths in report.skipped.values() for p in paths)] == ["ETH_USDT-1w.feather"]
    assert Store(tmp_path / "s").datasets() == []


def trades_frame(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "timestamp": [T0_MS + 250 * i for i in range(n)],
            "id": [str(1000 + i) for i in range(n)],
            "type": [None] * n,
            "side": ["buy" if i % 3 else "sell" for i in range(n)],
            "price": [2000.0 + i for i in range(n)],
            "amount": [0.1 * (i + 1) for i in range(n)],
            "cost": [(2000.0 + i) * 0.1 * (i + 1) for i in range(n)],
        },
        schema_overrides={"type": pl.String},
    )


@pytest.mark.parametrize("ext", ["feather", "parquet", "json", "json.gz"])
def test_trades_files(tmp_path: Path, ext: str) -> None:
    info = parse_name(write(trades_frame(6), tmp_path / f"ETH_USDT-trades.{ext}"))
    assert info is not None
    trades, report = import_trades(info)
    assert report.is_clean
    assert trades["ts_us"].to_list() == [(T0_MS + 250 * i) * 1000 for i in range(6)]
    assert trades["trade_id"].to_list() == list(range(1000, 1006))
    assert trades["side"].to_list() == [-1, 1, 1, -1, 1, 1] and trades["is_agg"].all()


def test_non_integer_trade_ids_are_refused(tmp_path: Path) -> None:
    info = parse_name(write(trades_frame(3).with_columns(pl.lit("abc").alias("id")), tmp_path / "ETH_USDT-trades.json"))
    assert info is not None
    with pytest.raises(FileFormatError, match="trade id 'abc' is not an integer"):
        import_trades(info)


def test_futures_folder_imports_prices_and_funding_and_skips_mark(tmp_path: Path) -> None:
    root = tmp_path / "binance"
    write(candles(120, 60_000, seed=4), root / "futures" / "ETH_USDT_USDT-1m-futures.feather")
    write(candles(3, 3_600_000, seed=5), root / "futures" / "ETH_USDT_USDT-1h-mark.feather")
    rates = pl.DataFrame(
        {
            "date": pl.Series([(T0_MS + 8 * 3_600_000 * i) * 1000 for i in range(4)]).cast(pl.Datetime("us", "UTC")),
            "open": [1e-4, -2e-5, 3e-4, 1e-4],
            **{c: [0.0] * 4 for c in ("high", "low", "close", "volume")},
        }
    )
    write(rates, root / "futures" / "ETH_USDT_USDT-8h-funding_rate.feather")
    write(candles(60, 60_000, seed=6), root / "ETH_USDT-1m.json")
    (root / "README.txt").write_text("not data")
    store = Store(tmp_path / "store")

    report = import_freqtrade([root], store, exchange="binance", timeframes=ALL_TF)

    assert store.read(DatasetKey("binanceusdm", "ETHUSDT", Kind.BARS, Timeframe.M1)).height == 120
    assert store.read(DatasetKey("binance", "ETHUSDT", Kind.BARS, Timeframe.M1)).height == 60
    assert {why.split(" ")[0]: len(p) for why, p in report.skipped.items()} == {"not": 1, "mark": 1}
    funding = read_funding(funding_path(store, "binanceusdm", "ETHUSDT"))
    assert funding["funding_rate"].to_list() == [1e-4, -2e-5, 3e-4, 1e-4]
    assert funding["ts_us"][1] == (T0_MS + 8 * 3_600_000) * 1000

    again = import_freqtrade([root], store, exchange="binance", timeframes=ALL_TF)  # idempotent
    assert all(r.rows_new == 0 for r in again.summary.appended.values())
    assert "0 new funding" in " ".join(again.notes)
    write(rates.with_columns(pl.col("open") * 2), root / "futures" / "ETH_USDT_USDT-8h-funding_rate.feather")
    with pytest.raises(FileFormatError, match=r"funding time\(s\) disagree"):
        import_freqtrade([root], store, exchange="binance", timeframes=ALL_TF)


def test_1m_files_give_the_wanted_coarser_bars_no_file_holds(tmp_path: Path) -> None:
    root = tmp_path / "binance"
    eth_1m = candles(3 * 60 + 7, 60_000, seed=7)  # 3 whole hours and 7 minutes of a 4th
    write(eth_1m, root / "ETH_USDT-1m.json")
    write(candles(2 * 60, 60_000, seed=8, start_ms=T0_MS + 86_400_000), root / "older" / "ETH_USDT-1m.json")
    write(candles(120, 60_000, seed=9), root / "BTC_USDT-1m.json")
    btc_1h = candles(2, 3_600_000, seed=10)
    write(btc_1h, root / "BTC_USDT-1h.json")
    store = Store(tmp_path / "store")

    report = import_freqtrade([root], store, exchange="binance", timeframes=(Timeframe.M1, Timeframe.H1))

    eth = store.read(DatasetKey("binance", "ETHUSDT", Kind.BARS, Timeframe.H1))
    assert eth.height == 3 + 2, "whole hours of both 1m files, the incomplete one dropped"
    first = eth_1m.head(60)
    assert eth.item(0, "open") == first["open"][0] and eth.item(0, "close") == first["close"][59]
    assert eth.item(0, "high") == first["high"].max() and np.isclose(eth.item(0, "volume"), first["volume"].sum())
    btc = store.read(DatasetKey("binance", "BTCUSDT", Kind.BARS, Timeframe.H1))
    assert btc["close"].to_list() == btc_1h["close"].to_list(), "BTC's own 1h file, not bars rebuilt from 1m"
    assert store.read(DatasetKey("binance", "ETHUSDT", Kind.BARS, Timeframe.D1)).height == 0, "1d not wanted"
    assert sum("1m→1h" in n for n in report.notes) == 2


def test_a_folder_without_freqtrade_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(FileFormatError, match="no freqtrade data file found"):
        import_freqtrade([tmp_path], Store(tmp_path / "s"), exchange="binance", timeframes=ALL_TF)


# ---------------------------------------------------------------------------------------------- real


def test_real_5m_feather_rolls_up_to_the_real_1h_file(tmp_path: Path) -> None:
    real = require_real()
    info = parse_name(real / "freqtrade" / "spot_5m_2024-01-01_2024-06-30" / "ETH_USDT-5m.feather")
    assert info is not None
    result = import_candles(info, ALL_TF)
    hours = result.bars[Timeframe.H1]
    assert hours.height == 182 * 24 and set(result.bars) == {Timeframe.H1, Timeframe.D1}
    reference = import_file(real / FILES[("eth", Timeframe.H1)]).frame
    joined = hours.join(reference, on="open_us", suffix="_ref")
    assert joined.height == hours.height
    for col in ("open", "high", "low", "close"):
        assert (joined[col] == joined[f"{col}_ref"]).all(), col
    assert np.allclose(joined["volume"], joined["volume_ref"], rtol=1e-9)


def test_real_json_and_futures_feather_read_every_row(tmp_path: Path) -> None:
    real = require_real() / "freqtrade"
    spot = parse_name(real / "spot_1m_2020-05-21_2020-06-20" / "ETH_USDT-1m.json")
    fut = parse_name(real / "futures_1m_2023-07-03_2023-08-17" / "futures" / "ETH_USDT_USDT-1m-futures.feather")
    assert spot is not None and fut is not None and fut.futures
    spot_bars, fut_bars = read_candles(spot), read_candles(fut)
    assert (spot_bars.height, fut_bars.height) == (43_199, 64_066)
    assert spot_bars.item(0, "open_us") == 1_590_021_240_000_000 and spot_bars.item(0, "open") == 211.1
    assert_frame_equal(import_candles(spot, ALL_TF).bars[Timeframe.M1], spot_bars.sort("open_us"))


@pytest.mark.slow
def test_real_freqtrade_folder_imports_every_file(tmp_path: Path) -> None:
    real = require_real() / "freqtrade"
    store = Store(tmp_path / "store")
    report = import_freqtrade([real], store, exchange="binance", timeframes=ALL_TF)

    assert not report.skipped and not report.cleaning
    expected: dict[DatasetKey, int] = {}
    for path in sorted(real.rglob("*-1m*")):
        info = parse_name(path)
        assert info is not None
        key = DatasetKey("binanceusdm" if info.futures else "binance", info.symbol, Kind.BARS, Timeframe.M1)
        expected[key] = expected.get(key, 0) + read_candles(info).height
    for key, rows in expected.items():
        assert store.read(key).height == rows, key
    assert expected[DatasetKey("binanceusdm", "ETHUSDT", Kind.BARS, Timeframe.M1)] == 64_066
    h2024 = 1_704_067_200_000_000  # the 2024 5m files: whole hours and days only, no 1m
    for symbol in ("ETHUSDT", "BTCUSDT"):
        assert store.read(DatasetKey("binance", symbol, Kind.BARS, Timeframe.H1), h2024).height == 182 * 24
        assert store.read(DatasetKey("binance", symbol, Kind.BARS, Timeframe.D1), h2024).height == 182
        # the 1m months give their whole hours too (2020-05-21 00:34 → 2020-06-20 00:32: 719 of them)
        may_2020 = store.read(DatasetKey("binance", symbol, Kind.BARS, Timeframe.H1), None, 1_592_611_200_000_000)
        assert may_2020.height == 719
