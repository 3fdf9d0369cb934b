"""As-of access to bars with close-time semantics: what was known at time t, and nothing later.

A bar is identified by its open time but is *visible* only from its close time ``open_us + tf.us``.
With ``t`` = 15:00:00 exactly (all times UTC):

* the 1h bar opened 14:00 closed at 15:00 → visible; it is the latest closed 1h bar;
* the 1h bar opened 15:00 is still forming → not visible (its partial state may be requested
  explicitly with ``partial_bar``, flagged by its elapsed fraction);
* the latest closed 1m bar is the one opened 14:59; the latest closed 1d bar is yesterday's.

At t = 15:42:10.5 the latest closed 1h bar is still 14:00 (for the whole hour 15:00 ≤ t < 16:00),
the latest closed 1m bar is 15:41 and the latest 1s bar is 15:42:09.

This is the look-ahead-safe rule of freqtrade's ``merge_informative_pair``, which shifts the
informative candle's date by one timeframe before merging; here it is a ``searchsorted`` on close
times. Missing bars (exchange outages) are never invented: the latest closed bar simply stays older,
and its age ``t - close_us`` says how stale it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import polars as pl

from rltrade.data.schema import BAR_SCHEMA, SchemaError, conform
from rltrade.types import Timeframe


@dataclass(frozen=True, eq=False)
class BarArrays:
    """One symbol's bars at one timeframe as compact numpy arrays (T bars, ascending ``open_us``).

    Build with ``BarArrays.from_frame``, which checks the order and the grid. Arrays are read-only.
    """

    tf: Timeframe
    open_us_T: np.ndarray
    open_T: np.ndarray
    high_T: np.ndarray
    low_T: np.ndarray
    close_T: np.ndarray
    volume_T: np.ndarray
    is_filled_T: np.ndarray
    close_us_T: np.ndarray = field(init=False, repr=False)
    """Close time of each bar, i.e. the first instant it is visible (precomputed: asof is hot)."""

    def __post_init__(self) -> None:
        """Check that every array has the bars' shape; derive and freeze the close times."""
        arrays = (self.open_T, self.high_T, self.low_T, self.close_T, self.volume_T, self.is_filled_T)
        if any(a.shape != self.open_us_T.shape for a in arrays):
            raise ValueError(f"{self.tf.value} bars: arrays differ in shape: {[a.shape for a in arrays]}")
        close_us_T = self.open_us_T + self.tf.us
        close_us_T.flags.writeable = False
        object.__setattr__(self, "close_us_T", close_us_T)

    @classmethod
    def from_frame(cls, bars: pl.DataFrame, tf: Timeframe) -> BarArrays:
        """Copy a BAR_SCHEMA frame into arrays; raises if unsorted, duplicated, off-grid or null."""
        bars = conform(bars, BAR_SCHEMA, what=f"{tf.value} bars")
        for name in ("open_us", "open", "high", "low", "close", "volume", "is_filled"):
            if bars[name].null_count():
                row = int(bars[name].is_null().arg_max() or 0)
                raise SchemaError(f"{tf.value} bars: null {name} at row {row}; repair or drop it first")
        open_us_T = bars["open_us"].to_numpy().astype(np.int64, copy=True)
        bad = open_us_T % tf.us != 0
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(f"{tf.value} bars: row {row} open_us={open_us_T[row]} is not on the {tf.value} grid")
        not_after = np.diff(open_us_T) <= 0
        if not_after.any():
            row = int(np.argmax(not_after)) + 1
            raise ValueError(
                f"{tf.value} bars: row {row} open_us={open_us_T[row]} is not after row {row - 1}; "
                "sort by open_us and drop duplicates"
            )
        arrays = {
            name: bars[name].to_numpy().astype(np.float64, copy=True)
            for name in ("open", "high", "low", "close", "volume")
        }
        is_filled_T = bars["is_filled"].to_numpy().astype(bool, copy=True)
        for a in (open_us_T, is_filled_T, *arrays.values()):
            a.flags.writeable = False
        return cls(
            tf=tf,
            open_us_T=open_us_T,
            open_T=arrays["open"],
            high_T=arrays["high"],
            low_T=arrays["low"],
            close_T=arrays["close"],
            volume_T=arrays["volume"],
            is_filled_T=is_filled_T,
        )

    def __len__(self) -> int:
        """Return the number of bars."""
        return len(self.open_us_T)


def last_closed_index(bars: BarArrays, t_us_B: np.ndarray | int) -> np.ndarray:
    """Index of the last bar with ``close_us <= t`` for each t, or -1 if no bar has closed yet.

    For 1h bars opened 13:00 and 14:00: t = 14:59:59.999999 → the 13:00 bar; t = 15:00:00 → the
    14:00 bar (it closed exactly then). Returns an int64 array of ``t_us_B``'s shape (0-d for a scalar).
    """
    return np.searchsorted(bars.close_us_T, np.asarray(t_us_B, dtype=np.int64), side="right") - 1


def window_index(bars: BarArrays, t_us_B: np.ndarray, length_W: int) -> np.ndarray:
    """Return the indices [B, W] of the ``length_W`` last bars closed at each t, oldest first, -1 where none.

    Row b ends with ``last_closed_index(bars, t_us_B[b])``; positions before the first bar are -1
    (mask them). Indices count stored bars: over an outage the window reaches further back in time.
    """
    last_B = last_closed_index(bars, np.asarray(t_us_B, dtype=np.int64).reshape(-1))
    idx_BW = last_B[:, None] + np.arange(1 - length_W, 1)[None, :]
    return np.where(idx_BW >= 0, idx_BW, -1)


class PartialBar(NamedTuple):
    """The current, not yet closed bar at each t, built only from finer bars closed by t.

    This is explicitly *not* a closed bar: ``elapsed_frac_B`` in [0, 1) is how much of it has
    elapsed, ``(t - open_us) / tf.us``. With 1m fine bars and t = 15:42:10, the 1h partial bar
    opened 15:00 aggregates the 1m bars 15:00 … 15:41 (``n_fine_B`` = 42) and has elapsed_frac 0.7028.
    When no fine bar of the current period has closed (t = 15:00:00, or an outage), it is empty:
    OHLC = the latest fine close (carried, NaN if none), volume 0, ``n_fine_B`` = 0.
    """

    open_us_B: np.ndarray
    open_B: np.ndarray
    high_B: np.ndarray
    low_B: np.ndarray
    close_B: np.ndarray
    volume_B: np.ndarray
    n_fine_B: np.ndarray
    elapsed_frac_B: np.ndarray


class _Running(NamedTuple):
    """Per fine bar: aggregates from the start of its coarse period up to and including it."""

    open_T: np.ndarray
    high_T: np.ndarray
    low_T: np.ndarray
    volume_T: np.ndarray
    n_T: np.ndarray


def _running(fine: BarArrays, tf: Timeframe) -> _Running:
    # Filled fine bars carry an old close, so like resample_bars they do not set open/high/low;
    # a coarse period with no traded fine bar yet falls back to the carried close below.
    traded = ~pl.col("is_filled")
    df = (
        pl.DataFrame(
            {
                "period": fine.open_us_T // tf.us,
                "open": fine.open_T,
                "high": fine.high_T,
                "low": fine.low_T,
                "close": fine.close_T,
                "volume": fine.volume_T,
                "is_filled": fine.is_filled_T,
            }
        )
        .with_columns(
            pl.when(traded & (traded.cum_sum().over("period") == 1)).then(pl.col("open")).alias("o"),
            pl.when(traded).then(pl.col("high")).alias("h"),
            pl.when(traded).then(pl.col("low")).alias("l"),
        )
        .select(
            pl.col("o").forward_fill().over("period").fill_null(pl.col("close")),
            # cum_max/cum_min leave a null at each filled bar: forward-fill the running value over it.
            pl.col("h").cum_max().forward_fill().over("period").fill_null(pl.col("close")),
            pl.col("l").cum_min().forward_fill().over("period").fill_null(pl.col("close")),
            pl.col("volume").cum_sum().over("period"),
            pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("period").alias("n"),
        )
    )
    return _Running(*(df[c].to_numpy() for c in ("o", "h", "l", "volume", "n")))


def partial_bar(fine: BarArrays, tf: Timeframe, t_us_B: np.ndarray | int) -> PartialBar:
    """Build the forming ``tf`` bar at each t (shape of ``t_us_B``, flattened), causally from ``fine`` bars.

    Uses only the fine bars that opened inside the current period (``open_us >= t // tf.us * tf.us``)
    and closed by t (``close_us <= t``): a fine bar still forming at t is left out, so with 1s fine
    bars at t = 15:42:10.5 the 1h partial bar covers the 1s bars 15:00:00 … 15:42:09.
    OHLC follow ``resample_bars`` (filled fine bars do not set open/high/low). See ``PartialBar``.
    """
    if tf.us <= fine.tf.us or tf.us % fine.tf.us:
        raise ValueError(f"partial {tf.value} bars need finer bars; got {fine.tf.value}")
    return _partial_from(fine, tf, _running(fine, tf), t_us_B)


def _partial_from(fine: BarArrays, tf: Timeframe, run: _Running, t_us_B: np.ndarray | int) -> PartialBar:
    t_B = np.asarray(t_us_B, dtype=np.int64).reshape(-1)
    period_open_B = t_B // tf.us * tf.us
    idx_B = last_closed_index(fine, t_B)
    if len(fine) == 0:
        nan_B = np.full(len(t_B), np.nan)
        zeros_B = np.zeros(len(t_B), dtype=np.int64)
        frac_B = (t_B - period_open_B) / tf.us
        return PartialBar(period_open_B, nan_B, nan_B, nan_B, nan_B, zeros_B.astype(np.float64), zeros_B, frac_B)
    safe_B = np.maximum(idx_B, 0)
    in_period_B = (idx_B >= 0) & (fine.open_us_T[safe_B] >= period_open_B)
    carried_B = np.where(idx_B >= 0, fine.close_T[safe_B], np.nan)

    def pick(values_T: np.ndarray, empty_B: np.ndarray) -> np.ndarray:
        return np.where(in_period_B, values_T[safe_B], empty_B)

    return PartialBar(
        open_us_B=period_open_B,
        open_B=pick(run.open_T, carried_B),
        high_B=pick(run.high_T, carried_B),
        low_B=pick(run.low_T, carried_B),
        close_B=pick(fine.close_T, carried_B),
        volume_B=pick(run.volume_T, np.zeros(len(t_B))),
        n_fine_B=pick(run.n_T, np.zeros(len(t_B), dtype=np.int64)),
        elapsed_frac_B=(t_B - period_open_B) / tf.us,
    )


class AlignedMarket:
    """Bars of several symbols and timeframes, queried "as of t" with close-time semantics.

    ``market.asof("ETHUSDT", Timeframe.H1, t)`` is the index of the latest 1h bar closed at t in
    ``market.bars("ETHUSDT", Timeframe.H1)``; ``market.partial("ETHUSDT", Timeframe.H1, t)`` is the
    forming 1h bar, built from the next finer timeframe held for that symbol.
    """

    def __init__(self, bars: Mapping[str, Mapping[Timeframe, BarArrays]]) -> None:
        for symbol, by_tf in bars.items():
            for tf, arrays in by_tf.items():
                if arrays.tf != tf:
                    raise ValueError(f"{symbol}: bars filed under {tf.value} are {arrays.tf.value} bars")
        self._bars = {symbol: dict(by_tf) for symbol, by_tf in bars.items()}
        self._running: dict[tuple[str, Timeframe, Timeframe], _Running] = {}

    @classmethod
    def from_frames(cls, frames: Mapping[str, Mapping[Timeframe, pl.DataFrame]]) -> AlignedMarket:
        """Wrap polars bar frames (symbol → timeframe → frame) as arrays."""
        return cls(
            {symbol: {tf: BarArrays.from_frame(df, tf) for tf, df in by_tf.items()} for symbol, by_tf in frames.items()}
        )

    @property
    def symbols(self) -> list[str]:
        """The symbols held, in insertion order."""
        return list(self._bars)

    def timeframes(self, symbol: str) -> list[Timeframe]:
        """Return the timeframes held for ``symbol``, finest first."""
        return sorted(self._by_tf(symbol), key=lambda tf: tf.us)

    def bars(self, symbol: str, tf: Timeframe) -> BarArrays:
        """Return the ``tf`` bars of ``symbol``; KeyError naming what is held if absent."""
        by_tf = self._by_tf(symbol)
        if tf not in by_tf:
            held = ", ".join(t.value for t in self.timeframes(symbol))
            raise KeyError(f"no {tf.value} bars for {symbol!r}; held: {held}")
        return by_tf[tf]

    def asof(self, symbol: str, tf: Timeframe, t_us: np.ndarray | int) -> np.ndarray:
        """``last_closed_index`` of ``symbol``'s ``tf`` bars at each t (-1 before the first close)."""
        return last_closed_index(self.bars(symbol, tf), t_us)

    def partial(
        self, symbol: str, tf: Timeframe, t_us: np.ndarray | int, *, fine_tf: Timeframe | None = None
    ) -> PartialBar:
        """Build the forming ``tf`` bar at each t (see ``partial_bar``) from ``fine_tf`` bars.

        ``fine_tf`` defaults to the next finer timeframe held for ``symbol`` (1m for a 1h bar when
        1m bars are held): it usually spans the longest history, while the finest (1s) is the most
        up to date. Running aggregates are computed once per (symbol, tf, fine_tf) and reused.
        """
        if fine_tf is None:
            finer = [f for f in self.timeframes(symbol) if f.us < tf.us and tf.us % f.us == 0]
            if not finer:
                raise KeyError(f"no bars finer than {tf.value} for {symbol!r} to build a partial bar from")
            fine_tf = finer[-1]
        key = (symbol, tf, fine_tf)
        if key not in self._running:
            fine = self.bars(symbol, fine_tf)
            if tf.us <= fine_tf.us or tf.us % fine_tf.us:
                raise ValueError(f"partial {tf.value} bars need finer bars; got {fine_tf.value}")
            self._running[key] = _running(fine, tf)
        return _partial_from(self.bars(symbol, fine_tf), tf, self._running[key], t_us)

    def _by_tf(self, symbol: str) -> dict[Timeframe, BarArrays]:
        if symbol not in self._bars:
            raise KeyError(f"unknown symbol {symbol!r}; held: {', '.join(self._bars)}")
        return self._bars[symbol]
