"""``rltrade data import`` of freqtrade folders: symbols, markets and timeframes from the file names."""

from __future__ import annotations

from pathlib import Path

import pytest

from rltrade.cli import main
from rltrade.data.store import DatasetKey, Store
from rltrade.types import Kind, Timeframe
from tests.support.freqtrade_files import candles, write


def test_import_a_freqtrade_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "user_data" / "data" / "binance"
    write(candles(24 * 12, 300_000, seed=1), data / "BTC_USDT-5m.feather")
    write(candles(90, 60_000, seed=2), data / "futures" / "ETH_USDT_USDT-1m-futures.feather")
    write(candles(3, 3_600_000, seed=3), data / "futures" / "ETH_USDT_USDT-1h-index.feather")
    store = tmp_path / "store"

    assert main(["data", "import", str(data), "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 file(s): index candles" in out and "5m→1h: 288 source bars → 24 bars" in out
    s = Store(store)
    assert s.read(DatasetKey("binance", "BTCUSDT", Kind.BARS, Timeframe.H1)).height == 24
    assert s.read(DatasetKey("binance", "BTCUSDT", Kind.BARS, Timeframe.D1)).height == 1
    assert s.read(DatasetKey("binance", "BTCUSDT", Kind.BARS, Timeframe.M1)).height == 0, "no invented 1m bars"
    assert s.read(DatasetKey("binanceusdm", "ETHUSDT", Kind.BARS, Timeframe.M1)).height == 90


def test_bad_freqtrade_imports_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ft = write(candles(10, 60_000), tmp_path / "ETH_USDT-1m.json")
    dump = tmp_path / "ETHUSDT-1m-2024-01-01.csv"
    dump.write_text("1704067200000,1,1,1,1,1\n")
    assert main(["data", "import", str(ft), str(dump), "--store", str(tmp_path / "s")]) == 2
    assert "separately" in capsys.readouterr().err
    assert main(["data", "import", str(ft), "--symbol", "ETHUSDT", "--store", str(tmp_path / "s")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["data", "import", str(empty), "--store", str(tmp_path / "s")]) == 2
    assert "no freqtrade data file found" in capsys.readouterr().err
    broken = tmp_path / "b" / "ETH_USDT-1m.feather"
    broken.parent.mkdir()
    broken.write_bytes(b"ARROW1 not really")
    assert main(["data", "import", str(broken), "--store", str(tmp_path / "s")]) == 2
    assert "cannot read this feather file" in capsys.readouterr().err
