"""load_market on a stored range: data.start / data.end bound the clock; history before start is kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rltrade.config import DataConfig
from rltrade.data.market import HISTORY_BARS, load_market
from rltrade.data.store import DatasetKey, Store
from rltrade.types import US_PER_DAY, Kind, Timeframe

DAY0 = 19_936 * US_PER_DAY  # 2024-08-01 00:00 UTC


def stored(tmp_path: Path) -> Path:
    store = Store(tmp_path / "store")
    for sym in ("ETHUSDT", "BTCUSDT"):
        for tf, n in ((Timeframe.M1, 10 * 1440), (Timeframe.H1, 24 * 300)):
            close = np.full(n, 100.0)
            start = DAY0 if tf is Timeframe.M1 else DAY0 - 290 * US_PER_DAY
            frame = pl.DataFrame(
                {
                    "open_us": start + np.arange(n, dtype=np.int64) * tf.us,
                    "open": close,
                    "high": close,
                    "low": close,
                    "close": close,
                    "volume": np.ones(n),
                }
            )
            store.append(DatasetKey("binance", sym, Kind.BARS, tf), frame)
    return store.root


def test_range_bounds_the_spans_and_reads_history_before_the_start(tmp_path: Path) -> None:
    root = stored(tmp_path)
    cfg = DataConfig(
        source="store",
        store=root,
        timeframes=(Timeframe.M1, Timeframe.H1),
        start="2024-08-03",  # type: ignore[arg-type]
        end="2024-08-08T12:00",  # type: ignore[arg-type]
    )
    market = load_market(cfg)
    start, end = cfg.range_us
    assert start == DAY0 + 2 * US_PER_DAY and end == DAY0 + 7 * US_PER_DAY + 12 * 3_600_000_000
    assert market.span_us("eth") == (start, end)
    m1, h1 = market.bars["eth"][Timeframe.M1], market.bars["eth"][Timeframe.H1]
    assert int(m1["open_us"].max()) < end and int(h1["open_us"].max()) < end  # nothing at or after the end
    assert int(m1["open_us"].min()) == DAY0  # both days of 1m history (fewer than HISTORY_BARS)
    assert h1.filter(pl.col("open_us") < start).height == HISTORY_BARS
    assert market.until(start).clock_range == (start, end)


def test_an_empty_range_is_a_clear_error(tmp_path: Path) -> None:
    cfg = DataConfig(source="store", store=stored(tmp_path), start="2030-01-01")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match=r"holds no bars for binance/ETHUSDT in \[2030-01-01"):
        load_market(cfg)
    with pytest.raises(ValueError, match=r"must be after data\.start"):
        DataConfig(start="2024-08-02", end="2024-08-01")  # type: ignore[arg-type]
