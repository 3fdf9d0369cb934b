"""Incremental bars for live use: trades → 1s → 1m → 1h → 1d, closed by the clock, bounded memory.

The rules are those of :mod:`rltrade.data.resample`, applied one element at a time so a live process
builds the same bars the batch resampler builds from the same trades:

* a bar ``[open_us, open_us + tf)`` holds the trades with ``open_us <= ts_us < open_us + tf`` and is
  closed (visible) once the clock reaches ``open_us + tf``; a trade at exactly the boundary belongs to
  the next bar;
* a bar without a trade is explicit: OHLC = previous close, volume 0, ``is_filled``;
* a coarser bar takes open/high/low from its *traded* source bars only and its close from the last
  source bar; it is filled only if every source bar is;
* a bar is *incomplete* (``complete=False``) when the source data cannot cover its whole interval: a
  stream started inside the interval, with no finer history back to the interval's open (the 1m bar of
  a stream started 40 s after the first stored trade holds 20 s of 1s bars). A coarser bar built from an
  incomplete bar is incomplete too. The state builder replaces such a bar by the exchange's own
  (:data:`BarSeed`) or masks the blocks that see it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rltrade.types import Timeframe


@dataclass
class ClosedBar:
    """One closed bar."""

    open_us: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    is_filled: bool
    complete: bool = True
    """False when the bar's source data did not cover its whole interval (module docstring)."""


BarSeed = Callable[[str, Timeframe, int], "ClosedBar | None"]
"""``(role, timeframe, open_us) -> the closed bar from an authoritative source (the exchange's klines), or None``.

Asked once per incomplete bar, when it closes; its answer replaces the bar the stream built."""


class GrowingBars:
    """Append-only bar arrays with amortised O(1) appends, trimmed to the newest ``keep`` bars."""

    def __init__(self, tf: Timeframe, keep: int) -> None:
        self.tf = tf
        self.keep = max(1, keep)
        cap = 2 * self.keep + 16
        self._open_us = np.zeros(cap, np.int64)
        self._ohlcv = np.zeros((cap, 5), np.float64)
        self._filled = np.zeros(cap, bool)
        self._n = 0
        self.n_total = 0
        """Bars appended since creation (trimming does not reduce it)."""

    def __len__(self) -> int:
        """Return the number of bars held."""
        return self._n

    def append(self, bar: ClosedBar) -> None:
        """Append the next closed bar; its open time must be after the previous bar's (grows the arrays as needed)."""
        if self._n and bar.open_us <= self._open_us[self._n - 1]:
            raise ValueError(
                f"{self.tf.value} bar at {bar.open_us} is not after the previous one ({self._open_us[self._n - 1]})"
            )
        if self._n == len(self._open_us):
            # Keep the newest `keep` bars: the arrays never grow past 2·keep + 16 rows.
            drop = self._n - self.keep
            self._open_us[: self.keep] = self._open_us[drop : self._n]
            self._ohlcv[: self.keep] = self._ohlcv[drop : self._n]
            self._filled[: self.keep] = self._filled[drop : self._n]
            self._n = self.keep
        i = self._n
        self._open_us[i] = bar.open_us
        self._ohlcv[i] = (bar.open, bar.high, bar.low, bar.close, bar.volume)
        self._filled[i] = bar.is_filled
        self._n += 1
        self.n_total += 1

    def extend_arrays(
        self,
        open_us: npt.NDArray[np.int64],
        ohlcv: npt.NDArray[np.float64],
        filled: npt.NDArray[np.bool_],
    ) -> None:
        """Append many bars at once (history at start-up)."""
        for k in range(len(open_us)):
            o, h, lo, c, v = (float(x) for x in ohlcv[k])
            self.append(ClosedBar(int(open_us[k]), o, h, lo, c, v, bool(filled[k])))

    def tail(self, n: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Return the newest ``n`` bars (fewer if not held): open_us, OHLCV [n, 5], is_filled."""
        a = max(0, self._n - n)
        return self._open_us[a : self._n], self._ohlcv[a : self._n], self._filled[a : self._n]

    @property
    def last_open_us(self) -> int | None:
        """The open time of the newest bar held, or None when empty."""
        return int(self._open_us[self._n - 1]) if self._n else None

    @property
    def last_close(self) -> float | None:
        """The close price of the newest bar held, or None when empty."""
        return float(self._ohlcv[self._n - 1, 3]) if self._n else None


@dataclass
class _Partial:
    open_us: int
    open: float = math.nan
    high: float = -math.inf
    low: float = math.inf
    close: float = math.nan
    volume: float = 0.0
    traded: bool = False
    n_src: int = 0
    complete: bool = True


@dataclass
class Aggregator:
    """Builds ``dst`` bars from a stream of consecutive ``src`` bars (or trades when ``src`` is None)."""

    dst: Timeframe
    last_close: float | None
    """Close carried into a bar without trades."""
    current: _Partial | None = None

    def _start(self, open_us: int) -> _Partial:
        self.current = _Partial(open_us=open_us)
        return self.current

    def mark_incomplete(self, open_us: int) -> None:
        """Flag the bar opening at ``open_us`` (started if need be) as built from a partial interval."""
        if self.current is None or self.current.open_us != open_us:
            self._start(open_us)
        assert self.current is not None
        self.current.complete = False

    def add_trade(self, ts_us: int, price: float, qty: float) -> None:
        """Add a trade to the bar containing ``ts_us`` (bars up to it must be closed with ``close_until``)."""
        open_us = ts_us // self.dst.us * self.dst.us
        cur = self.current if self.current is not None and self.current.open_us == open_us else None
        if cur is None:
            if self.current is not None:
                raise ValueError(f"trade at {ts_us} skips the open {self.dst.value} bar; call close_until first")
            cur = self._start(open_us)
        if not cur.traded:
            cur.open = price
            cur.traded = True
        cur.high = max(cur.high, price)
        cur.low = min(cur.low, price)
        cur.close = price
        cur.volume += qty

    def close_until(self, t_us: int) -> list[ClosedBar]:
        """Close every trade-built bar ending at or before ``t_us``, empty ones included (as filled bars).

        Before the first trade, with no earlier close to carry, empty intervals yield no bar.
        """
        closed: list[ClosedBar] = []
        if self.current is None:
            return closed
        while self.current.open_us + self.dst.us <= t_us:
            cur = self.current
            if cur.traded or self.last_close is not None:
                closed.append(self._finish(cur))
            # else: no trade yet and nothing to carry (a stream started before its first trade): no bar,
            # as the batch resampler starts the series at the first trade.
            self._start(cur.open_us + self.dst.us)
        return closed

    def add_bar(self, bar: ClosedBar, src: Timeframe) -> list[ClosedBar]:
        """Feed the next ``src`` bar; returns the ``dst`` bar it completes, if any."""
        open_us = bar.open_us // self.dst.us * self.dst.us
        cur = self.current
        if cur is None or cur.open_us != open_us:
            cur = self._start(open_us)
        if not bar.complete:
            cur.complete = False
        if not bar.is_filled:
            if not cur.traded:
                cur.open = bar.open
                cur.traded = True
            cur.high = max(cur.high, bar.high)
            cur.low = min(cur.low, bar.low)
        cur.close = bar.close
        cur.volume += bar.volume
        cur.n_src += 1
        if bar.open_us + src.us == open_us + self.dst.us:
            done = self._finish(cur)
            self.current = None
            return [done]
        return []

    def _finish(self, cur: _Partial) -> ClosedBar:
        if cur.traded:
            bar = ClosedBar(cur.open_us, cur.open, cur.high, cur.low, cur.close, cur.volume, False, cur.complete)
        else:
            carried = cur.close if not math.isnan(cur.close) else self.last_close
            if carried is None or math.isnan(carried):
                raise ValueError(f"{self.dst.value} bar at {cur.open_us} has no trade and no earlier close to carry")
            bar = ClosedBar(cur.open_us, carried, carried, carried, carried, cur.volume, True, cur.complete)
        self.last_close = bar.close
        return bar
