"""Binance klines (6 or 12 columns, ms or µs) to ``BAR_SCHEMA`` bars, with the timeframe inferred and checked.

Layouts (Binance names; the USDⓈ-M dumps' header names are accepted as aliases):

- 6 columns: ``open_time, open, high, low, close, volume`` (our real-data files);
- 12 columns: the above plus ``close_time, quote_asset_volume, number_of_trades,
  taker_buy_base_asset_volume, taker_buy_quote_asset_volume, ignore`` (data.binance.vision).

``open_time`` is in ms, or in µs for spot dumps from 2025 on; the unit comes from the magnitude
(:func:`rltrade.data.cleaning.detect_time_unit`). ``close_time`` must be in the same unit and equal
``open_time + timeframe - 1 unit``, as Binance writes it. ``taker_buy_quote_asset_volume`` and ``ignore``
are read (so the layout is checked) and not kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl

from rltrade.data.cleaning import (
    FILE,
    LINE,
    TimeframeError,
    TimeUnit,
    TimeUnitError,
    detect_time_unit,
    fmt_time,
    to_us,
)
from rltrade.types import Timeframe

KLINES_6: Final[dict[str, pl.DataType]] = {
    "open_time": pl.Int64(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
}
KLINES_12: Final[dict[str, pl.DataType]] = {
    **KLINES_6,
    "close_time": pl.Int64(),
    "quote_asset_volume": pl.Float64(),
    "number_of_trades": pl.Int64(),
    "taker_buy_base_asset_volume": pl.Float64(),
    "taker_buy_quote_asset_volume": pl.Float64(),
    "ignore": pl.String(),
}
# Header names of the USDⓈ-M kline dumps → the names above.
KLINE_HEADER_ALIASES: Final[dict[str, str]] = {
    "quote_volume": "quote_asset_volume",
    "count": "number_of_trades",
    "taker_buy_volume": "taker_buy_base_asset_volume",
    "taker_buy_quote_volume": "taker_buy_quote_asset_volume",
}


def fmt_duration(us: int) -> str:
    """``3_600_000_000`` → ``"1h"``; the largest whole unit among d, h, m, s, ms, µs."""
    for size, name in ((86_400_000_000, "d"), (3_600_000_000, "h"), (60_000_000, "m"), (1_000_000, "s"), (1000, "ms")):
        if us % size == 0:
            return f"{us // size}{name}"
    return f"{us}µs"


def infer_timeframe(open_us: pl.Series, *, source: str, given: Timeframe | None, named: Timeframe | None) -> Timeframe:
    """Infer the bars' timeframe: the modal spacing of distinct open times, checked against ``given`` / ``named``.

    ``given`` (the caller's) and ``named`` (from the file name) must agree with each other and with the
    modal spacing; without either, the modal spacing must be a supported timeframe. A single bar has no
    spacing: then ``given`` or ``named`` is required.
    """
    if given is not None and named is not None and given != named:
        raise TimeframeError(
            f"the file name says {named} but timeframe={given.value!r} was given",
            file=source,
            hint="Pass the timeframe the file really holds, or rename the file",
        )
    claimed = given or named
    steps = open_us.drop_nulls().unique().sort().diff().drop_nulls()
    if steps.len() == 0:
        if claimed is None:
            raise TimeframeError(
                "cannot infer the timeframe from a single bar", file=source, hint="Pass timeframe= explicitly"
            )
        return claimed
    modal = int(steps.mode().min())  # type: ignore[arg-type]
    if claimed is not None:
        if modal != claimed.us:
            said = "the file name says" if given is None else "timeframe= says"
            raise TimeframeError(
                f"bars are mostly {fmt_duration(modal)} apart but {said} {claimed}",
                file=source,
                hint="Pass the timeframe the file really holds",
            )
        return claimed
    for tf in Timeframe:
        if tf.us == modal:
            return tf
    allowed = ", ".join(t.value for t in Timeframe)
    raise TimeframeError(
        f"bars are mostly {fmt_duration(modal)} apart, which is not a supported timeframe ({allowed})",
        file=source,
        hint="Download 1s, 1m, 1h or 1d klines; rltrade resamples everything else from those",
    )


def _check_close_time(raw: pl.DataFrame, open_unit: TimeUnit, tf: Timeframe, source: str) -> None:
    close_unit = detect_time_unit(raw["close_time"], raw[LINE], source=source, column="close_time")
    if close_unit != open_unit:
        raise TimeUnitError(
            f"close_time is in {close_unit} but open_time in {open_unit}",
            file=source,
            column="close_time",
            hint="The columns come from different exports; re-download the file",
        )
    step_us = 1000 if open_unit == "ms" else 1  # Binance closes a bar one tick of its unit early
    bad = raw.select(
        (to_us("close_time", close_unit) != to_us("open_time", open_unit) + (tf.us - step_us)).fill_null(False)
    ).to_series()
    if bad.any():
        row = raw.row(int(bad.arg_true()[0]), named=True)
        raise TimeframeError(
            f"close_time {row['close_time']} does not close a {tf} bar opened at "
            f"{fmt_time(row['open_time'], open_unit)} ({int(bad.sum())} such row(s))",
            file=source,
            line=row[LINE],
            column="close_time",
            hint=f"Check the file holds {tf} klines, or pass the right timeframe",
        )


def bars_from_klines(
    raw: pl.DataFrame, *, source: str, timeframe: Timeframe | None, named: Timeframe | None
) -> tuple[pl.DataFrame, Timeframe]:
    """Raw kline columns (``KLINES_6`` or ``KLINES_12`` plus ``_line``/``_file``) → bars and their timeframe.

    Times become µs; the 12-column extras fill ``quote_volume``, ``trade_count`` and ``taker_buy_volume``
    (null for 6 columns). Values are not validated here: :func:`rltrade.data.cleaning.clean_bars` does it.
    """
    unit = detect_time_unit(raw["open_time"], raw[LINE], source=source, column="open_time")
    full = "close_time" in raw.columns
    cols: Sequence[pl.Expr] = [
        to_us("open_time", unit).alias("open_us"),
        *(pl.col(c) for c in ("open", "high", "low", "close", "volume")),
        (pl.col("quote_asset_volume") if full else pl.lit(None, pl.Float64)).alias("quote_volume"),
        (pl.col("number_of_trades") if full else pl.lit(None, pl.Int64)).alias("trade_count"),
        (pl.col("taker_buy_base_asset_volume") if full else pl.lit(None, pl.Float64)).alias("taker_buy_volume"),
        pl.lit(False).alias("is_filled"),
        pl.col(LINE),
        pl.col(FILE),
    ]
    bars = raw.select(cols)
    tf = infer_timeframe(bars["open_us"], source=source, given=timeframe, named=named)
    if full:
        _check_close_time(raw, unit, tf, source)
    return bars, tf
