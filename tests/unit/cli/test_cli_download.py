"""``rltrade data download`` end to end against a local archive server (past days only: no top-up needed)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from rltrade.cli import main
from rltrade.data.archives import Archive, DataSpec, Market, day_us
from rltrade.data.importers import FileKind
from rltrade.data.store import Store
from rltrade.types import Timeframe
from tests.support.archive_server import ArchiveServer, kline_csv, kline_rows

DAY = dt.date(2024, 3, 4)


@pytest.fixture
def server() -> Iterator[ArchiveServer]:
    with ArchiveServer() as s:
        for i, symbol in enumerate(("ETHUSDT", "BTCUSDT")):
            spec = DataSpec(symbol, Market.SPOT, FileKind.KLINES, Timeframe.H1)
            rows = kline_rows(day_us(DAY) // 1000, 24, 3_600_000, seed=i)
            s.add_csv(Archive(spec, DAY, monthly=False).url_path, kline_csv(rows))
        yield s


def _argv(server: ArchiveServer, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "data", "download", "--start", DAY.isoformat(), "--end", (DAY + dt.timedelta(days=1)).isoformat(),
        "-k", "1h", "--base-url", server.base_url, "--store", str(tmp_path / "store"), "--no-top-up", *extra,
    ]  # fmt: skip


def test_download_imports_both_symbols(
    server: ArchiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_argv(server, tmp_path)) == 0
    out = capsys.readouterr().out
    assert "2 downloaded" in out and "binance/ETHUSDT/bars/1h" in out and "binance/BTCUSDT/bars/1h" in out
    assert (tmp_path / "store-archives" / "data" / "spot" / "daily" / "klines" / "BTCUSDT" / "1h").is_dir()
    assert main(_argv(server, tmp_path)) == 0
    assert "2 already stored" in capsys.readouterr().out


def test_bad_checksum_and_bad_options_exit_2(
    server: ArchiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = DataSpec("ETHUSDT", Market.SPOT, FileKind.KLINES, Timeframe.H1)
    path = Archive(spec, DAY, monthly=False).url_path
    server.add_csv(path, kline_csv(kline_rows(day_us(DAY) // 1000, 24, 3_600_000, seed=9)), checksum="f" * 64)
    assert main(_argv(server, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "nothing was imported" in err and "--accept-checksum-mismatch ETHUSDT-1h-2024-03-04.zip" in err
    assert Store(tmp_path / "store").datasets() == []
    assert main([*_argv(server, tmp_path), "--accept-checksum-mismatch", "ETHUSDT-1h-2024-03-04.zip"]) == 0

    assert main([*_argv(server, tmp_path), "--market", "um", "-k", "1s"]) == 2
    assert "1s klines exist for spot only" in capsys.readouterr().err
    assert main([*_argv(server, tmp_path), "-k", "trades", "-k", "aggTrades"]) == 2
