"""One real freqtrade month end to end, as a user runs it: import the folder, walk forward on its store, write up.

A three-day slice of the USDⓈ-M perpetual month (``../shared/data/real/freqtrade/futures_1m_2023-07-03_2023-08-17``)
is written to a freqtrade folder under the test's temporary directory (the real files are never copied into the
repository), imported with ``rltrade data import``, walked forward with the ``real-month`` preset and the shipped
``configs/real-month-usdm.yaml`` (a tiny training budget), and written up with ``rltrade results``.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl
import pytest
import yaml

from rltrade.cli import main
from rltrade.data.store import DatasetKey, Store
from rltrade.training.presets import deep_merge
from rltrade.types import Kind, Timeframe
from tests.support.real_data import require_real
from tests.support.tiny_config import TINY

pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[2]
MONTH = "futures_1m_2023-07-03_2023-08-17"
START, END = dt.datetime(2023, 7, 18, 12, tzinfo=dt.UTC), dt.datetime(2023, 7, 21, 12, tzinfo=dt.UTC)


def _slice(real: Path, folder: Path) -> None:
    """Write the slice's two feather files the way freqtrade names them (a ``futures/`` folder)."""
    for name in ("ETH_USDT_USDT-1m-futures.feather", "BTC_USDT_USDT-1m-futures.feather"):
        frame = pl.read_ipc(real / "freqtrade" / MONTH / "futures" / name)
        cut = frame.filter((pl.col("date") >= START) & (pl.col("date") < END))
        (folder / "futures").mkdir(parents=True, exist_ok=True)
        cut.write_ipc(folder / "futures" / name)


@pytest.mark.slow
@pytest.mark.real
@pytest.mark.timeout(1800)
def test_a_usdm_month_imports_walks_forward_and_is_written_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = require_real()
    if not (real / "freqtrade" / MONTH).is_dir():
        pytest.skip(f"the freqtrade month {MONTH} is not in {real / 'freqtrade'}")
    folder, store, out = tmp_path / "binance", tmp_path / "store", tmp_path / "runs" / "wf-1m-usdm"
    _slice(real, folder)
    shipped = yaml.safe_load((REPO / "configs" / "real-month-usdm.yaml").read_text())
    funding = real / Path(shipped["env"]["funding_file"]).name
    tiny = {k: v for k, v in TINY.items() if k != "data"}
    config = tmp_path / "month.yaml"
    config.write_text(yaml.safe_dump(deep_merge(deep_merge(shipped, tiny), {"env": {"funding_file": str(funding)}})))

    assert main(["data", "import", str(folder), "--config", str(config), "--store", str(store)]) == 0
    s = Store(store)
    assert s.read(DatasetKey("binanceusdm", "ETHUSDT", Kind.BARS, Timeframe.M1)).height == 3 * 1440
    assert s.read(DatasetKey("binanceusdm", "ETHUSDT", Kind.BARS, Timeframe.H1)).height == 3 * 24, "1h from 1m"
    assert s.read(DatasetKey("binance", "ETHUSDT", Kind.BARS, Timeframe.M1)).height == 0, "never beside spot"

    argv = ["walkforward", "--preset", "real-month", "--config", str(config), "--store", str(store)]
    argv += ["--folds", "2", "--seeds", "1", "--num-cpus", "1", "--out", str(out)]
    assert main(argv) == 0
    page = tmp_path / "RESULTS.md"
    assert main(["results", str(out), "--out", str(page)]) == 0
    capsys.readouterr()

    text = page.read_text()
    assert "## wf-1m-usdm" in text and f"run folder: {out}" in text
    assert "ETHUSDT (reference BTCUSDT), Binance USDⓈ-M perpetual futures" in text and "1m clock" in text
    assert "taker fee 0.050% per side (fee tier binance-usdm" in text and funding.name in text
    assert "decisions 2023-07-18" in text and "folds: 2 (rolling)" in text
    assert re.search(r"^\*\*(Edge:|No edge)", text, re.MULTILINE), "the verdict line"
    assert "| **all** | concatenated |" in text and "supervised" in text
