"""Canonical in-memory schemas for trades and bars (polars), shared by every source.

Trades (one row per exchange trade, or per aggregated trade):

============  =======  ==============================================================
column        dtype    meaning
============  =======  ==============================================================
ts_us         Int64    exchange time of the trade, µs since epoch UTC
trade_id      Int64    exchange trade id (aggregate id for aggTrades)
price         Float64  trade price (quote per base)
qty           Float64  traded quantity in base units, > 0
side          Int8     aggressor side: +1 buyer took the ask, -1 seller hit the bid
is_agg        Boolean  True when the row is an aggregated trade (aggTrades), not a raw trade
============  =======  ==============================================================

Bars (one row per bar, identified by its open time):

================  =======  ==========================================================
column            dtype    meaning
================  =======  ==========================================================
open_us           Int64    bar open time, µs since epoch UTC; visible from open_us + tf
open/high/low/close Float64 prices
volume            Float64  base volume
quote_volume      Float64  quote volume (null when the source does not know it)
trade_count       Int64    number of trades (null when unknown)
taker_buy_volume  Float64  base volume bought by takers (null when unknown)
is_filled         Boolean  True when the bar had no trade: OHLC carried from the previous
                           close, zero volume. Never invented price movement.
================  =======  ==========================================================
"""

from __future__ import annotations

from typing import Final

import polars as pl

TRADE_SCHEMA: Final[dict[str, pl.DataType]] = {
    "ts_us": pl.Int64(),
    "trade_id": pl.Int64(),
    "price": pl.Float64(),
    "qty": pl.Float64(),
    "side": pl.Int8(),
    "is_agg": pl.Boolean(),
}

BAR_SCHEMA: Final[dict[str, pl.DataType]] = {
    "open_us": pl.Int64(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "quote_volume": pl.Float64(),
    "trade_count": pl.Int64(),
    "taker_buy_volume": pl.Float64(),
    "is_filled": pl.Boolean(),
}

TRADE_KEY: Final = "trade_id"
BAR_KEY: Final = "open_us"


class SchemaError(ValueError):
    """A frame does not have the columns or dtypes rltrade expects."""


def empty_trades() -> pl.DataFrame:
    """Return an empty frame with the trade schema."""
    return pl.DataFrame(schema=TRADE_SCHEMA)


def empty_bars() -> pl.DataFrame:
    """Return an empty frame with the bar schema."""
    return pl.DataFrame(schema=BAR_SCHEMA)


def conform(df: pl.DataFrame, schema: dict[str, pl.DataType], *, what: str) -> pl.DataFrame:
    """Return ``df`` with exactly ``schema``'s columns, in order, cast to its dtypes.

    Missing nullable bar extras (quote_volume, trade_count, taker_buy_volume, is_filled) are added
    as nulls / False; any other missing column is an error naming it.
    """
    optional = {"quote_volume", "trade_count", "taker_buy_volume", "is_filled", "is_agg"}
    missing = [c for c in schema if c not in df.columns and c not in optional]
    if missing:
        raise SchemaError(f"{what}: missing column(s) {missing}; got {df.columns}")
    exprs: list[pl.Expr] = []
    for name, dtype in schema.items():
        if name in df.columns:
            exprs.append(pl.col(name).cast(dtype, strict=True))
        elif name in ("is_filled", "is_agg"):
            exprs.append(pl.lit(False, dtype=pl.Boolean()).alias(name))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return df.select(exprs)
