"""One market's raw inputs in memory: trades and bars of the traded and the reference symbol.

``MarketFrames`` is what the feature layer consumes. It is loaded from the store or generated from
the synthetic config (:func:`load_market`), and can be cut at a time ``t`` (:meth:`MarketFrames.until`)
exactly as a live process would have seen it at ``t``: trades with ``ts_us <= t`` and bars closed by
``t`` (``open_us + tf <= t``). The look-ahead check relies on that cut.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from rltrade.config import DataConfig
from rltrade.data.store import DatasetKey, Store
from rltrade.types import Kind, Timeframe

ROLES: tuple[str, str] = ("eth", "btc")
"""Role names used by the features layer: the traded symbol and the reference symbol."""


@dataclass(frozen=True, eq=False)
class MarketFrames:
    """Trades and bars per role (``"eth"`` traded, ``"btc"`` reference), sorted, in the canonical schemas."""

    symbols: Mapping[str, str]
    """Role → exchange symbol, e.g. ``{"eth": "ETHUSDT", "btc": "BTCUSDT"}``."""
    trades: Mapping[str, pl.DataFrame]
    """Role → TRADE_SCHEMA frame (may be empty)."""
    bars: Mapping[str, Mapping[Timeframe, pl.DataFrame]]
    """Role → timeframe → BAR_SCHEMA frame."""
    extras: Mapping[str, object] = field(default_factory=dict)
    """What a source knows beyond the data (the synthetic market's true regimes and planted signal)."""
    clock_range: tuple[int | None, int | None] = (None, None)
    """``data.start`` / ``data.end`` in µs: the spans (and so the decision clock) stay inside; bars before
    the start are history for windows and indicators only."""

    def until(self, t_us: int) -> MarketFrames:
        """Return the market as known at ``t_us``: trades at or before it, bars closed by it. Extras are dropped."""
        return MarketFrames(
            self.symbols,
            {role: df.filter(pl.col("ts_us") <= t_us) for role, df in self.trades.items()},
            {
                role: {tf: df.filter(pl.col("open_us") + tf.us <= t_us) for tf, df in by_tf.items()}
                for role, by_tf in self.bars.items()
            },
            clock_range=self.clock_range,
        )

    def _clamp(self, lo: int, hi: int) -> tuple[int, int]:
        start, end = self.clock_range
        return (lo if start is None else max(lo, start)), (hi if end is None else min(hi, end))

    def trade_stream(self, after_us: int) -> list[tuple[str, int, float, float, int]]:
        """Merge both roles' trades after ``after_us`` into one time-ordered stream.

        Each item is ``(role, ts_us, price, qty, side)``, in the order a live feed delivers them (ties keep
        each symbol's own order).
        """
        parts = [
            df.filter(pl.col("ts_us") > after_us).with_columns(pl.lit(role).alias("role"))
            for role, df in self.trades.items()
        ]
        merged = pl.concat(parts).sort("ts_us", maintain_order=True)
        return merged.select("role", "ts_us", "price", "qty", "side").rows()

    def span_us(self, role: str = "eth", tf: Timeframe = Timeframe.M1) -> tuple[int, int]:
        """First bar open and last bar close of ``role``'s ``tf`` bars, inside ``clock_range``."""
        df = self.bars[role][tf]
        if df.height == 0:
            raise ValueError(f"no {tf.value} bars for {self.symbols[role]}")
        return self._clamp(int(df.item(0, "open_us")), int(df.item(-1, "open_us")) + tf.us)

    def tick_span_us(self, role: str = "eth") -> tuple[int, int] | None:
        """First and last trade time of ``role`` inside ``clock_range``, or None without trades there."""
        df = self.trades[role]
        start, end = self.clock_range
        if start is not None:
            df = df.filter(pl.col("ts_us") >= start)
        if end is not None:
            df = df.filter(pl.col("ts_us") < end)
        if df.height == 0:
            return None
        return int(df.item(0, "ts_us")), int(df.item(-1, "ts_us"))


HISTORY_BARS = 5_000
"""Bars per timeframe read before ``data.start``: history for the windows and indicators (a 300-bar window
plus the 300-bar volume median and every warm-up fit with room to spare). ``rltrade train`` says so when the
store holds fewer than a block needs (:mod:`rltrade.features.history`)."""
TRADE_HISTORY_US = 3_600_000_000
"""Trades read before ``data.start``: an hour, more than any tick window."""


def load_market(cfg: DataConfig, *, store: Store | None = None) -> MarketFrames:
    """Load the market of ``cfg``: generated in memory (``source: synthetic``) or read from the store.

    With ``data.start`` / ``data.end``, the store is read in ``[start - history, end)`` (``HISTORY_BARS``
    bars per timeframe, ``TRADE_HISTORY_US`` of trades) and the frames' ``clock_range`` keeps the decision
    clock inside ``[start, end)``; nothing at or after ``end`` is read, so nothing there can leak in.
    """
    symbols = {"eth": cfg.symbol, "btc": cfg.reference}
    start, end = cfg.range_us
    if cfg.source == "synthetic":
        from rltrade.data.synthetic import generate_market

        market = generate_market(cfg.synthetic, exchange=cfg.exchange, symbols=(cfg.symbol, cfg.reference))
        return MarketFrames(
            symbols,
            {role: market[sym].trades for role, sym in symbols.items()},
            {
                role: {tf: df for tf, df in market[sym].bars.items() if tf in cfg.timeframes}
                for role, sym in symbols.items()
            },
            {
                "regimes": market.regimes,
                "signal_truth": market.signal_truth,
                "quotes_1s": {role: market[sym].quotes_1s for role, sym in symbols.items()},
            },
            clock_range=(start, end),
        )
    store = store if store is not None else Store(cfg.store)
    trades: dict[str, pl.DataFrame] = {}
    bars: dict[str, dict[Timeframe, pl.DataFrame]] = {}
    for role, sym in symbols.items():
        first = None if start is None else start - TRADE_HISTORY_US
        trades[role] = store.read(DatasetKey(cfg.exchange, sym, Kind.TRADES), first, end)
        bars[role] = {}
        for tf in cfg.timeframes:
            first = None if start is None else start - HISTORY_BARS * tf.us
            df = store.read(DatasetKey(cfg.exchange, sym, Kind.BARS, tf), first, end)
            if df.height:
                bars[role][tf] = df
        if not bars[role]:
            where = "" if start is None and end is None else f" in [{cfg.start}, {cfg.end})"
            raise FileNotFoundError(
                f"the store {store.root} holds no bars for {cfg.exchange}/{sym}{where}; run `rltrade data import` "
                "or `rltrade data fetch` first, check the range with `rltrade data info` (or use data.source: "
                "synthetic)"
            )
    return MarketFrames(symbols, trades, bars, clock_range=(start, end))
