"""Binance ``trades`` / ``aggTrades`` dumps and recorded ``@trade`` streams to ``TRADE_SCHEMA`` trades.

Layouts (Binance names):

- ``trades``: ``id, price, qty, quote_qty, time, is_buyer_maker, is_best_match`` (spot; USDⓈ-M dumps have
  no ``is_best_match``);
- ``aggTrades``: ``agg_trade_id, price, quantity, first_trade_id, last_trade_id, transact_time,
  is_buyer_maker, is_best_match`` (spot; USDⓈ-M without the last column) → ``is_agg=True``;
- recorded stream (``../shared/data/real``): ``trade_time_ms, event_time_ms, trade_id, price, qty,
  is_buyer_maker, local_ts_ns``. The trade time is ``trade_time_ms``, the exchange's clock; ``local_ts_ns``
  is the recorder's clock (about 1.2 s behind) and is never used.

Dump times are ms, or µs for spot dumps from 2025 on (told apart by magnitude); recorded times must be ms,
as their header says. ``side`` is -1 when the buyer was the maker (the aggressor sold), else +1.
``quote_qty``, ``first/last_trade_id``, ``is_best_match`` and ``event_time_ms`` are read (so the layout is
checked) and not kept.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from rltrade.data.cleaning import FILE, LINE, TimeUnit, detect_time_unit, to_us

TRADES_6: Final[dict[str, pl.DataType]] = {
    "id": pl.Int64(),
    "price": pl.Float64(),
    "qty": pl.Float64(),
    "quote_qty": pl.Float64(),
    "time": pl.Int64(),
    "is_buyer_maker": pl.Boolean(),
}
TRADES_7: Final[dict[str, pl.DataType]] = {**TRADES_6, "is_best_match": pl.Boolean()}
AGG_TRADES_7: Final[dict[str, pl.DataType]] = {
    "agg_trade_id": pl.Int64(),
    "price": pl.Float64(),
    "quantity": pl.Float64(),
    "first_trade_id": pl.Int64(),
    "last_trade_id": pl.Int64(),
    "transact_time": pl.Int64(),
    "is_buyer_maker": pl.Boolean(),
}
AGG_TRADES_8: Final[dict[str, pl.DataType]] = {**AGG_TRADES_7, "is_best_match": pl.Boolean()}
RECORDED_TRADES: Final[dict[str, pl.DataType]] = {
    "trade_time_ms": pl.Int64(),
    "event_time_ms": pl.Int64(),
    "trade_id": pl.Int64(),
    "price": pl.Float64(),
    "qty": pl.Float64(),
    "is_buyer_maker": pl.Boolean(),
    "local_ts_ns": pl.Int64(),
}


def trades_from_raw(raw: pl.DataFrame, *, source: str) -> pl.DataFrame:
    """Raw columns of one of the layouts above (plus ``_line``/``_file``) → trades with µs times.

    The layout is recognised by its id column. Values are not validated here:
    :func:`rltrade.data.cleaning.clean_trades` does it.
    """
    allowed: tuple[TimeUnit, ...] = ("ms", "us")
    if "agg_trade_id" in raw.columns:
        id_col, qty_col, time_col, is_agg = "agg_trade_id", "quantity", "transact_time", True
    elif "trade_time_ms" in raw.columns:
        id_col, qty_col, time_col, is_agg = "trade_id", "qty", "trade_time_ms", False
        allowed = ("ms",)
    else:
        id_col, qty_col, time_col, is_agg = "id", "qty", "time", False
    unit = detect_time_unit(raw[time_col], raw[LINE], source=source, column=time_col, allowed=allowed)
    return raw.select(
        to_us(time_col, unit).alias("ts_us"),
        pl.col(id_col).alias("trade_id"),
        pl.col("price"),
        pl.col(qty_col).alias("qty"),
        # 1 - 2*maker keeps a missing flag null (cleaning counts it) instead of defaulting to a side.
        (1 - 2 * pl.col("is_buyer_maker").cast(pl.Int8)).cast(pl.Int8).alias("side"),
        pl.lit(is_agg).alias("is_agg"),
        pl.col(LINE),
        pl.col(FILE),
    )
