"""Access to the real Binance files in ``<repo>/../shared/data/real`` for tests (skipped when absent)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from rltrade.data.importers import import_file
from rltrade.data.market import MarketFrames
from rltrade.types import Timeframe

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"

FILES = {
    ("eth", "trades"): "binance_spot_ETHUSDT_trades_2024-08-08T2354_2024-08-09T0005.csv.gz",
    ("btc", "trades"): "binance_spot_BTCUSDT_trades_2024-08-08T2354_2024-08-09T0005.csv.gz",
    ("eth", Timeframe.M1): "binance_spot_ETHUSDT_1m_2024-07-26_2024-08-25.csv.gz",
    ("btc", Timeframe.M1): "binance_spot_BTCUSDT_1m_2024-07-26_2024-08-25.csv.gz",
    ("eth", Timeframe.H1): "binance_spot_ETHUSDT_1h_2018-01-01_2026-05-16.csv.gz",
    ("btc", Timeframe.H1): "binance_spot_BTCUSDT_1h_2018-01-01_2026-05-16.csv.gz",
    ("eth", Timeframe.D1): "binance_spot_ETHUSDT_1d_2020-02-24_2025-11-22.csv.gz",
    ("btc", Timeframe.D1): "binance_spot_BTCUSDT_1d_2020-02-24_2025-11-22.csv.gz",
}


def require_real() -> Path:
    """The real-data folder, or skip the test with the reason."""
    if not REAL.is_dir():
        pytest.skip(f"real Binance data not found at {REAL} (shared/data/real beside the repository)")
    return REAL


@cache
def real_market() -> MarketFrames:
    """The aligned real dataset: 11 minutes of trades (both symbols), 1s bars from them, 1m/1h/1d klines.

    The 1m month, the 1h history and the 1d history all cover the tick window; bars after it are kept
    (the builders only ever read bars closed by the query time).
    """
    from rltrade.data.resample import trades_to_bars

    root = require_real()
    trades = {role: import_file(root / FILES[(role, "trades")], policy="strict").frame for role in ("eth", "btc")}
    bars: dict[str, dict[Timeframe, object]] = {}
    for role in ("eth", "btc"):
        bars[role] = {
            tf: import_file(root / FILES[(role, tf)], policy="strict").frame
            for tf in (Timeframe.M1, Timeframe.H1, Timeframe.D1)
        }
        t = trades[role]
        start = -(-int(t.item(0, "ts_us")) // Timeframe.S1.us) * Timeframe.S1.us
        bars[role][Timeframe.S1] = trades_to_bars(t, Timeframe.S1, start_us=start)
    return MarketFrames({"eth": "ETHUSDT", "btc": "BTCUSDT"}, trades, bars)  # type: ignore[arg-type]
