"""Streaming state builder: the live counterpart of the batch builder, updated trade by trade.

Start it from stored history cut at ``t0`` (``MarketFrames.until(t0)``, at least as long as every
warm-up), then feed trades in time order with :meth:`StreamingStateBuilder.update` and read
:meth:`StreamingStateBuilder.state_at` on the decision clock. Bars are built incrementally from the
trades with the batch resampler's rules (:mod:`rltrade.features.bar_stream`); per-bar channels,
regime features and pivots are then computed with the *same* kernels as the batch builder, on the
newest ``history_bars + W`` bars (recursive indicators forget their start long before that), so the
two builders agree: flags and pivots exactly, float features within ``FLOAT_TOLERANCE``.

Work per trade is O(1) (ring buffers, scalar bar aggregation); per-bar work happens lazily on the
first ``state_at`` after a bar closes. A series' channels are computed over its whole kept tail once;
after that, each read after a few bars closed computes only the new bars' rows
(:func:`~rltrade.features.bar_channels.extend_bar_channels`, from their last ``history_bars + 1`` bars:
the same warm-up as the oldest row a window reads), the fixed cost of a live decision on the 1 s clock,
also while a young series' kept tail is still filling (it grows instead of moving on).

CNN blocks: the builder reads the newest row of each timeframe from :attr:`StreamingStateBuilder.cnn`
(:class:`~rltrade.features.cnn_blocks.CnnStreams`), which the live CNN bridge (:mod:`rltrade.models`)
appends to once per bar close, reading its input windows with :meth:`StreamingStateBuilder.bar_window`.
Without rows the CNN blocks are zero and flagged off, as in the batch builder.

Starting at any moment: the bars forming at ``t0`` are primed from the finer stored bars of their
period. When those do not reach back to the period's open (the stored 1s bars start 40 s into the minute
holding ``t0``, say), the bar is *incomplete* (:mod:`rltrade.features.bar_stream`). At its close the
builder asks ``seed`` (the exchange's klines) for the real bar and uses it; without a seed, or if it has
no answer, the bar is kept but every block that reads it (its bars block, its returns block, the regime
for 1m, the pivots for the pivot timeframe, the CNN rows via :meth:`StreamingStateBuilder.bar_window`)
is *masked*: zero, its ``has_`` flag off and the ``warmup`` flag on, for as long as the bar is among the
newest bars those kernels read (the ``keep`` tail). :attr:`StreamingStateBuilder.partial_bars` counts
both outcomes. After the mask lifts, the blocks again equal the batch builder's (the pivots up to any
pivot the incomplete bar's high or low confirmed, which a tracker keeps for its levels).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from rltrade.config import FeaturesConfig
from rltrade.data.market import MarketFrames
from rltrade.features.bar_channels import BarChannels, bar_windows, compute_bar_channels, extend_bar_channels
from rltrade.features.bar_stream import Aggregator, BarSeed, ClosedBar, GrowingBars
from rltrade.features.cnn_blocks import CnnStreams, cnn_flags
from rltrade.features.layout import StateLayout
from rltrade.features.market_features import FeatureSpec, FeatureStats, required_series
from rltrade.features.pivots import PivotTracker
from rltrade.features.regime import compute_regime_features
from rltrade.features.state_batch import RETURN_CLIP, RETURN_SCALE, BlockValues, assemble_flags
from rltrade.features.ticks import TickStream
from rltrade.types import Timeframe

FLOAT_TOLERANCE = 1e-4
"""Max absolute difference between streaming and batch float features (documented, tested)."""

CHAIN: tuple[Timeframe, ...] = (Timeframe.S1, Timeframe.M1, Timeframe.H1, Timeframe.D1)


@dataclass
class _RoleState:
    bars: dict[Timeframe, GrowingBars]
    trade_agg: Aggregator
    bar_aggs: dict[Timeframe, Aggregator]
    """dst timeframe → aggregator fed by the next finer timeframe."""
    last_trade_us: int | None


class StreamingStateBuilder:
    """Incremental states of ``layout`` (see the module docstring)."""

    def __init__(
        self,
        layout: StateLayout,
        cfg: FeaturesConfig,
        history: MarketFrames,
        t0_us: int,
        stats: FeatureStats = FeatureStats(),
        *,
        seed: BarSeed | None = None,
    ) -> None:
        self.layout = layout
        self._slices = {b.name: b.slice for b in layout.blocks}
        self.spec = FeatureSpec.from_config(cfg, layout, stats)
        self.t_us = t0_us
        hist = history.until(t0_us)
        self._keep = self._keep_bars()
        self._seed = seed
        self.partial_bars = {"seeded": 0, "masked": 0}
        """Incomplete bars closed so far: replaced by the seed's bar, or kept and masked (module docstring)."""
        self._tainted: dict[tuple[str, Timeframe], int] = {}
        """(role, tf) → ``n_total`` index of its newest kept incomplete bar."""
        self._roles = {role: self._init_role(hist, role, t0_us) for role in ("eth", "btc")}
        self._dirty: set[tuple[str, Timeframe]] = set(self._roles_tfs())
        self._channels: dict[tuple[str, Timeframe], BarChannels] = {}
        self._channels_at: dict[tuple[str, Timeframe], int] = {}
        """(role, tf) → the series' ``n_total`` when its channels were last brought up to date."""
        self.channel_updates = {"full": 0, "extended": 0}
        """Channel computations so far: over a series' whole kept tail, or of its new bars only."""
        self._regime: tuple[npt.NDArray[np.float32], bool] | None = None
        self._regime_dirty = True
        self.ticks = TickStream(self.spec.tick)
        self.cnn = CnnStreams()
        """Per-timeframe CNN rows, appended by the CNN bridge at each bar close."""
        eth_trades = hist.trades.get("eth")
        if eth_trades is not None and eth_trades.height and layout.has("eth_ticks"):
            # The ticks block needs the trades of the last window plus the burst counter's span.
            recent = eth_trades.filter(
                pl.col("ts_us") > t0_us - self.spec.tick.window_us - 2 * self.spec.tick.intensity_us
            )
            for ts, p, q, s in recent.select("ts_us", "price", "qty", "side").iter_rows():
                self.ticks.update(ts, p, q, s)
        self.pivots: PivotTracker | None = None
        if layout.has("pivots"):
            self.pivots = PivotTracker(self.spec.pivot_tf.us, n=self.spec.pivot_n, levels=self.spec.pivot_levels)
            piv = hist.bars["eth"][self.spec.pivot_tf]
            for o, h, lo, c in piv.select("open_us", "high", "low", "close").iter_rows():
                self.pivots.update(o, h, lo, c)

    # ------------------------------------------------------------------ set-up
    def _roles_tfs(self) -> list[tuple[str, Timeframe]]:
        return sorted(required_series(self.layout), key=lambda k: (k[0], k[1].us))

    def _keep_bars(self) -> dict[Timeframe, int]:
        windows = [b.shape[0] for b in self.layout.blocks if b.kind == "bars"] + [
            b.shape[0] + 1 for b in self.layout.blocks if b.kind == "flat" and b.timeframe is not None
        ]
        w = max(windows, default=1)
        keep = {tf: self.spec.bar.history_bars + w + 1 for tf in CHAIN}
        keep[Timeframe.M1] = max(keep[Timeframe.M1], self.spec.regime.history_bars + 1)
        return keep

    def _init_role(self, hist: MarketFrames, role: str, t0_us: int) -> _RoleState:
        bars: dict[Timeframe, GrowingBars] = {}
        by_tf = hist.bars.get(role, {})
        for tf in CHAIN:
            g = GrowingBars(tf, self._keep[tf])
            df = by_tf.get(tf)
            if df is not None and df.height:
                df = df.tail(self._keep[tf])
                g.extend_arrays(
                    df["open_us"].to_numpy(),
                    df.select("open", "high", "low", "close", "volume").to_numpy(),
                    df["is_filled"].to_numpy(),
                )
            bars[tf] = g
        trades = hist.trades.get(role)
        last_close = bars[Timeframe.S1].last_close
        if last_close is None and trades is not None and trades.height:
            last_close = float(trades.item(-1, "price"))
        trade_agg = Aggregator(Timeframe.S1, last_close)
        # The 1s bar forming at t0: the trades of the current second.
        sec_open = t0_us // Timeframe.S1.us * Timeframe.S1.us
        trade_agg.current = None
        if trades is not None and trades.height:
            for ts, p, q in trades.filter(pl.col("ts_us") >= sec_open).select("ts_us", "price", "qty").iter_rows():
                trade_agg.add_trade(ts, p, q)
        if trade_agg.current is None:
            trade_agg._start(sec_open)
        # Coarser bars forming at t0 are primed with the finer bars of their current period.
        bar_aggs: dict[Timeframe, Aggregator] = {}
        for src, dst in itertools.pairwise(CHAIN):
            agg = Aggregator(dst, bars[dst].last_close)
            period_open = t0_us // dst.us * dst.us
            open_us, ohlcv, filled = bars[src].tail(dst.us // src.us)
            for k in np.flatnonzero(open_us >= period_open):
                o, h, lo, c, v = (float(x) for x in ohlcv[k])
                agg.add_bar(ClosedBar(int(open_us[k]), o, h, lo, c, v, bool(filled[k])), src)
            if not _covers(by_tf.get(src), src, period_open, t0_us):
                agg.mark_incomplete(period_open)
            bar_aggs[dst] = agg
        last_trade = int(trades.item(-1, "ts_us")) if trades is not None and trades.height else None
        return _RoleState(bars, trade_agg, bar_aggs, last_trade)

    # ------------------------------------------------------------------ updates
    def advance_to(self, t_us: int) -> None:
        """Move the clock to ``t_us``: close every bar ending at or before it (empty ones as filled bars)."""
        if t_us < self.t_us:
            raise ValueError(f"the clock only moves forward: {t_us} < {self.t_us}")
        self.t_us = t_us
        for role, st in self._roles.items():
            for bar in st.trade_agg.close_until(t_us):
                self._push(role, Timeframe.S1, bar)

    def _push(self, role: str, tf: Timeframe, bar: ClosedBar) -> None:
        st = self._roles[role]
        if not bar.complete:
            seeded = self._seed(role, tf, bar.open_us) if self._seed is not None else None
            if seeded is not None and seeded.open_us == bar.open_us:
                bar = dataclasses.replace(seeded, complete=True)
                self.partial_bars["seeded"] += 1
            else:
                self.partial_bars["masked"] += 1
                self._tainted[(role, tf)] = st.bars[tf].n_total
        st.bars[tf].append(bar)
        self._dirty.add((role, tf))
        if role == "eth" and tf is Timeframe.M1:
            self._regime_dirty = True
        if role == "btc" and tf is Timeframe.M1:
            self._regime_dirty = True
        if role == "eth" and self.pivots is not None and tf is self.spec.pivot_tf:
            self.pivots.update(bar.open_us, bar.high, bar.low, bar.close)
        i = CHAIN.index(tf)
        if i + 1 < len(CHAIN):
            dst = CHAIN[i + 1]
            for done in st.bar_aggs[dst].add_bar(bar, tf):
                self._push(role, dst, done)

    def update(self, role: str, ts_us: int, price: float, qty: float, side: int) -> None:
        """Feed one trade of ``role`` (``"eth"`` or ``"btc"``), in time order across both roles."""
        self.advance_to(max(ts_us, self.t_us))
        if ts_us < self.t_us:
            raise ValueError(
                f"{role} trade at {ts_us} arrives after the clock moved to {self.t_us}; feed in time order"
            )
        st = self._roles[role]
        st.trade_agg.add_trade(ts_us, price, qty)
        st.last_trade_us = ts_us
        if role == "eth" and self.layout.has("eth_ticks"):
            self.ticks.update(ts_us, price, qty, side)

    # ------------------------------------------------------------------ reading
    def state_at(self, t_us: int) -> npt.NDArray[np.float32]:
        """Return the flat state ``float32 [layout.size]`` at ``t_us`` (≥ the last trade fed)."""
        out = np.zeros(self.layout.size, np.float32)
        for name, values in self.blocks_at(t_us).items():
            out[self._slices[name]] = values.reshape(-1)
        return out

    def tainted(self, role: str, tf: Timeframe) -> bool:
        """Whether an incomplete ``tf`` bar of ``role`` is still among the newest bars the kernels read."""
        at = self._tainted.get((role, tf))
        if at is None:
            return False
        if self._roles[role].bars[tf].n_total - at <= self._keep[tf]:
            return True
        del self._tainted[(role, tf)]
        return False

    def _masked(self, block_name: str, symbol: str | None, tf: Timeframe | None) -> bool:
        """Whether the block reads an incomplete bar (the CNN blocks are masked through :meth:`bar_window`)."""
        if not self._tainted or block_name in ("flags", "cnn_hidden", "cnn_predictions", "eth_ticks"):
            return False
        if block_name == "regime":
            return self.tainted("eth", Timeframe.M1) or self.tainted("btc", Timeframe.M1)
        if block_name == "pivots":
            return self.tainted("eth", self.spec.pivot_tf)
        return symbol is not None and tf is not None and self.tainted(symbol, tf)

    def blocks_at(self, t_us: int) -> BlockValues:
        """Per-block values at ``t_us``, shaped like the batch builder's ``gather_blocks`` rows ``[1, ...]``.

        A block reading an incomplete bar is masked: zeros, ``has_`` off, ``warmup`` on (module docstring).
        """
        self.advance_to(t_us)
        out: BlockValues = {}
        has: dict[str, bool] = {}
        warm: list[bool] = []
        cnn_has_4 = np.zeros(1, bool)
        cnn_rows: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.bool_]] | None = None
        for block in self.layout.blocks:
            if self._masked(block.name, block.symbol, block.timeframe):
                out[block.name] = np.zeros((1, *block.shape), np.float32)
                has[block.name] = False
                warm.append(True)
                continue
            if block.kind == "bars":
                assert block.symbol is not None and block.timeframe is not None
                ch = self._channels_of(block.symbol, block.timeframe)
                idx = np.array([ch.n_bars - 1], np.int64)
                x, mask_BW = bar_windows(ch, idx, block.shape[0])
                out[block.name] = x
                has[block.name] = bool(mask_BW[0, -1])
                warm.append(ch.n_bars > 0 and not bool(mask_BW.all()))
            elif block.kind == "ticks":
                x_MF, mask_M = self.ticks.features_at(t_us)
                out[block.name] = x_MF[None]
                has[block.name] = bool(mask_M[0])
            elif block.name == "pivots":
                assert self.pivots is not None
                feats, avail = self.pivots.features(t_us)
                out[block.name] = feats.reshape(1, *block.shape)
                has[block.name] = bool(avail.any())
            elif block.name == "regime":
                values, valid = self._regime_row()
                out[block.name] = values[None]
                has[block.name] = valid
                warm.append(not valid)
            elif block.name in ("cnn_hidden", "cnn_predictions"):
                if cnn_rows is None:  # one read for both CNN blocks
                    cnn_rows = self.cnn.rows_at(t_us)
                hidden_4H, preds_44, cnn_has_4 = cnn_rows
                out[block.name] = (hidden_4H if block.name == "cnn_hidden" else preds_44)[None]
                has[block.name] = bool(cnn_flags(cnn_has_4)[0])
            elif block.kind == "flat" and block.symbol is not None and block.timeframe is not None:
                out[block.name], has[block.name] = self._returns(block.symbol, block.timeframe, block.shape[0])
        last = self._roles["eth"].last_trade_us
        stale = self.layout.has("eth_ticks") and (last is None or t_us - last > self.spec.stale_after_us)
        out["flags"] = assemble_flags(self.layout, has, [any(warm)], [stale], [bool(cnn_flags(cnn_has_4)[1])])
        return out

    def bar_window(
        self, role: str, tf: Timeframe, window: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], int | None]:
        """Return the ``window`` bars of ``role`` and ``tf`` closed by the clock: ``(x_1WC, mask_1W, last close)``.

        The same values as the batch ``bar_windows`` at the last closed bar (within ``FLOAT_TOLERANCE``)
        while ``window`` is at most the layout's bar window; the last close is None before any bar.
        """
        ch = self._channels_of(role, tf)
        x, mask = bar_windows(ch, np.array([ch.n_bars - 1], np.int64), window)
        if self.tainted(role, tf):
            # An incomplete bar is in the window: nothing may be served from it (module docstring).
            mask = np.zeros_like(mask)
        return x, mask, self.last_close_us(role, tf)

    def last_close_us(self, role: str, tf: Timeframe) -> int | None:
        """Close time of the newest closed ``tf`` bar of ``role`` (None before any): what a CNN cache keys on."""
        last_open = self._roles[role].bars[tf].last_open_us
        return None if last_open is None else last_open + tf.us

    def _channels_of(self, role: str, tf: Timeframe) -> BarChannels:
        """Return the channels of the newest ``keep`` bars of ``role``'s ``tf`` series (module docstring)."""
        key = (role, tf)
        if key in self._dirty or key not in self._channels:
            bars, what = self._roles[role].bars[tf], f"{role} {tf.value} (live)"
            prev, new = self._channels.get(key), bars.n_total - self._channels_at.get(key, 0)
            warm = self.spec.bar.history_bars + 1
            keep = self._keep[tf]
            # Extend while the new bars have their warm-up in the series, also while the kept tail still
            # fills (a series younger than ``keep`` bars grows): a full recompute only at the start.
            if prev is not None and 0 < new <= keep - warm and bars.n_total >= warm + new:
                _, ohlcv, _ = bars.tail(warm + new)
                self._channels[key] = extend_bar_channels(prev, ohlcv, new, keep=keep, what=what)
                self.channel_updates["extended"] += 1
            elif prev is None or new > 0:
                _, ohlcv, _ = bars.tail(keep)
                o, h, lo, c, v = (np.ascontiguousarray(ohlcv[:, k]) for k in range(5))
                self._channels[key] = compute_bar_channels(o, h, lo, c, v, self.spec.bar, what=what)
                self.channel_updates["full"] += 1
            self._channels_at[key] = bars.n_total
            self._dirty.discard(key)
        return self._channels[key]

    def _regime_row(self) -> tuple[npt.NDArray[np.float32], bool]:
        if self._regime_dirty or self._regime is None:
            n = self.spec.regime.history_bars + 1
            eth_open, eth, _ = self._roles["eth"].bars[Timeframe.M1].tail(n)
            btc_open, btc, _ = self._roles["btc"].bars[Timeframe.M1].tail(n + 1)
            if len(eth_open) == 0:
                self._regime = (np.zeros(10, np.float32), False)
            else:
                # Same alignment as market_features.regime_inputs: BTC's close carried onto ETH's grid.
                pos = np.searchsorted(btc_open, eth_open, side="right") - 1
                ref = btc[np.clip(pos, 0, max(len(btc_open) - 1, 0)), 3] if len(btc_open) else eth[:, 3]
                feats = compute_regime_features(
                    eth[:, 1],
                    eth[:, 2],
                    eth[:, 3],
                    eth[:, 4],
                    ref,
                    self.spec.regime,
                    what="live regime",
                    last_only=True,
                )
                # The tail is either the whole series or longer than the warm-up, so validity matches batch.
                self._regime = (feats.values_TF[-1], bool(feats.valid_T[-1]))
            self._regime_dirty = False
        return self._regime

    def _returns(self, role: str, tf: Timeframe, n_ret: int) -> tuple[npt.NDArray[np.float32], bool]:
        _, ohlcv, _ = self._roles[role].bars[tf].tail(n_ret + 1)
        closes = ohlcv[:, 3]
        ret = np.zeros(n_ret, np.float64)
        if len(closes) >= 2:
            r = np.diff(np.log(closes)) * RETURN_SCALE
            ret[n_ret - len(r) :] = r
        return np.clip(ret, -RETURN_CLIP, RETURN_CLIP).astype(np.float32)[None], len(closes) == n_ret + 1


def _covers(src_bars: pl.DataFrame | None, src: Timeframe, period_open: int, t0_us: int) -> bool:
    """Whether the stored ``src`` bars cover ``[period_open, t0)``: the bar forming at ``t0`` is complete.

    True when ``t0``'s ``src`` bar opens the period (nothing before it to cover), or when the stored bars
    start at or before the period's open and reach the ``src`` bar before ``t0``'s. Holes inside the stored
    series are the exchange's outages (no trades), not missing data.
    """
    src_now = t0_us // src.us * src.us
    if src_now <= period_open:
        return True
    if src_bars is None or src_bars.height == 0:
        return False
    first, last = int(src_bars.item(0, "open_us")), int(src_bars.item(-1, "open_us"))
    return first <= period_open and last >= src_now - src.us


def seed_from_frames(frames: MarketFrames) -> BarSeed:
    """Make a :data:`BarSeed` reading the stored bars of ``frames`` (the exchange's klines as imported).

    Asked at an incomplete bar's close, it returns the stored bar opening then, or None when the store does
    not hold it (a live session past the store's end): causal, since the bar has closed when it is asked.
    """
    index: dict[tuple[str, Timeframe], tuple[npt.NDArray[np.int64], pl.DataFrame]] = {}

    def seed(role: str, tf: Timeframe, open_us: int) -> ClosedBar | None:
        key = (role, tf)
        if key not in index:
            df = frames.bars.get(role, {}).get(tf)
            if df is None or df.height == 0:
                return None
            index[key] = (df["open_us"].to_numpy(), df)
        opens, df = index[key]
        k = int(np.searchsorted(opens, open_us))
        if k >= len(opens) or int(opens[k]) != open_us:
            return None
        row = df.row(k, named=True)
        return ClosedBar(
            open_us,
            float(row["open"]),
            float(row["high"]),
            float(row["low"]),
            float(row["close"]),
            float(row["volume"]),
            bool(row["is_filled"]),
        )

    return seed
