"""``rltrade data`` against an inconsistent, damaged or old store: exit codes and what the messages say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rltrade.cli import main
from rltrade.data.store import DatasetKey, Store
from rltrade.types import US_PER_DAY, US_PER_MINUTE, Kind, Timeframe

DAY0_MS = 1_722_470_400_000  # 2024-08-01 00:00 UTC
M1 = DatasetKey("binance", "ETHUSDT", Kind.BARS, Timeframe.M1)


def klines_csv(path: Path, start_ms: int, n: int, *, bump: float = 0.0) -> Path:
    """A headerless Binance 1m klines file (6 columns) of ``n`` bars from ``start_ms``."""
    lines = []
    for i in range(n):
        t = start_ms + i * 60_000
        close = 100.0 + (t // 60_000) % 5 + bump
        lines.append(f"{t},{close},{close + 1},{close - 1},{close},3.0")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_conflicting_file_exits_2_naming_column_and_iso_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    first = klines_csv(tmp_path / "ETHUSDT-1m-2024-08-01.csv", DAY0_MS, 3 * 1440)
    assert main(["data", "import", str(first), "--store", str(store)]) == 0
    before = sorted(p.name for p in store.rglob("*"))
    # Overlaps the last stored day and goes on for 3 more; its close disagrees on the overlap.
    clash = klines_csv(tmp_path / "ETHUSDT-1m-2024-08-03.csv", DAY0_MS + 2 * 86_400_000, 4 * 1440, bump=0.5)
    capsys.readouterr()
    assert main(["data", "import", str(clash), "--store", str(store)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "2024-08-03T00:00:00Z" in err and "column 'open'" in err and "Nothing was written" in err
    assert str(DAY0_MS * 1000 + 2 * US_PER_DAY) not in err
    assert sorted(p.name for p in store.rglob("*")) == before


def test_damaged_file_exits_3_naming_it_and_check_drops_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    assert (
        main(
            ["data", "import", str(klines_csv(tmp_path / "ETHUSDT-1m-x.csv", DAY0_MS, 2 * 1440)), "--store", str(store)]
        )
        == 0
    )
    (_, entry), _ = Store(store).partitions(M1)
    path = M1.folder(store) / entry.file
    path.write_bytes(path.read_bytes()[: entry.bytes // 2])
    capsys.readouterr()
    for args in (["data", "info"], ["data", "import", str(tmp_path / "ETHUSDT-1m-x.csv")], ["data", "check"]):
        assert main([*args, "--store", str(store)]) == 3, args
        out, err = capsys.readouterr()
        said = " ".join((out + err).split())
        assert entry.file in said and "--drop-bad" in said, args
    assert main(["data", "check", "--drop-bad", "--store", str(store)]) == 0
    assert main(["data", "check", "--store", str(store)]) == 0
    assert Store(store).read(M1).height == 1440


def test_old_layout_exits_3_until_migrated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    for day in range(3):
        t0 = DAY0_MS * 1000 + day * US_PER_DAY
        close = np.full(1440, 100.0)
        frame = pl.DataFrame(
            {
                "open_us": t0 + np.arange(1440, dtype=np.int64) * US_PER_MINUTE,
                "open": close,
                "high": close,
                "low": close,
                "close": close,
                "volume": np.ones(1440),
            }
        )
        folder = M1.folder(store) / f"date=2024-08-0{day + 1}"
        folder.mkdir(parents=True)
        frame.write_parquet(folder / "part.parquet")
    assert main(["data", "info", "--store", str(store)]) == 3
    assert "rltrade data migrate" in " ".join(capsys.readouterr().err.split())
    assert main(["data", "migrate", "--store", str(store)]) == 0
    assert "4,320 rows migrated" in capsys.readouterr().out
    assert Store(store).read(M1).height == 3 * 1440


def test_info_reports_the_hole_between_two_imports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    a = klines_csv(tmp_path / "ETHUSDT-1m-a.csv", DAY0_MS, 1440)
    b = klines_csv(tmp_path / "ETHUSDT-1m-b.csv", DAY0_MS + 270 * 86_400_000, 1440)  # nine months later
    for f in (a, b):
        assert main(["data", "import", str(f), "--store", str(store)]) == 0
    capsys.readouterr()
    assert main(["data", "info", "--store", str(store)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1 hole(s); the longest has nothing between 2024-08-01 23:59:00 and 2025-04-28 00:00:00" in out
    assert "(269d 0h)" in out
