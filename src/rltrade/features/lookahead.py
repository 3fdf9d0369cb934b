"""The look-ahead check: recompute every state block from raw data cut at t, and with the future changed.

For each check time ``t`` the check recomputes the blocks *from the raw inputs* (trades and 1m bars,
stored 1h/1d history before them) through the whole pipeline (resampling to 1s/1h/1d, indicators,
pivots, regime, the fitted statistic, CNN rows, state gathering):

1. **truncated**: from the raw data as known at ``t`` (:meth:`MarketFrames.until`);
2. **perturbed**: from the raw data with everything after ``t`` changed (:func:`perturb_after`: prices,
   sizes, trade times moved, trades dropped and added, one 1 µs after ``t``, bars rescaled and their
   ``is_filled`` flipped), at full length;

and compares each block at ``t`` with the full computation. A causal block is identical in all three,
to the last bit: every block is compared exactly (tolerance 0) unless registered with a tolerance.
Exactness holds because every kernel computes a value at ``t`` from the same inputs in the same order
whatever follows (the bar channels, regime and pivots are sequential or per-window reductions; the
resampled bars are per-bar reductions; CNN rows are bit-causal, :func:`rltrade.models.bridge.compute_rows`).

Where leaks live (:func:`sample_times`): at bar closes of every timeframe (close − 1 µs, close,
close + 1 µs), at trade timestamps (± 1 µs), and at random times over the whole history as well as the
tick period.

Blocks register as functions ``(frames, t_us_B) -> {block name: values [B, ...]}`` in a
:class:`LookaheadCheck`; the standard state blocks come from :func:`state_blocks` (with the fitted
statistics refitted on each variant and real CNN rows injected by the caller, since this layer never
runs a model), and the canaries in the tests register deliberately leaky ones, which the check must
flag; ``state_blocks(canary_early_us=...)`` plants a leak inside the real state (a bar shown early).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import polars as pl

from rltrade.config import FeaturesConfig
from rltrade.data.market import MarketFrames
from rltrade.data.resample import resample_bars_with_report, trades_to_bars
from rltrade.data.splits import TimeRange
from rltrade.features.cnn_blocks import CnnBlocks
from rltrade.features.layout import StateLayout
from rltrade.features.market_features import FeatureStats, build_market_features, fit_feature_stats
from rltrade.features.state_batch import BatchStateBuilder
from rltrade.types import Timeframe

BlockFn = Callable[[MarketFrames, npt.NDArray[np.int64]], Mapping[str, npt.NDArray[np.floating]]]


def derive_frames(raw: MarketFrames, end_us: int) -> MarketFrames:
    """Rebuild the derived bars from the raw inputs: 1s from trades, 1h and 1d from 1m.

    ``end_us`` bounds the 1s bars (every second closed by it exists, empty ones filled), so a cut at
    ``t`` yields exactly the 1s bars a live process would have closed by ``t``. Stored 1h / 1d bars that
    open before the first bar rebuilt from finer data are kept (real data: years of 1h and 1d history,
    one month of 1m bars), so the check runs on the history the pipeline uses.
    """
    bars: dict[str, dict[Timeframe, pl.DataFrame]] = {}
    for role, by_tf in raw.bars.items():
        out = dict(by_tf)
        trades = raw.trades.get(role)
        if trades is not None and trades.height and Timeframe.S1 in by_tf:
            end = end_us // Timeframe.S1.us * Timeframe.S1.us
            first = int(trades.item(0, "ts_us"))
            if end > first:
                out[Timeframe.S1] = trades_to_bars(trades, Timeframe.S1, end_us=end)
        m1 = by_tf.get(Timeframe.M1)
        if m1 is not None and m1.height and Timeframe.H1 in by_tf:
            # The forming hour and day are incomplete by design: dropped, as the batch data never has them.
            # Only bars rebuilt from the 1m bars replace stored ones (a day from stored hours would replace
            # the stored day in the full data but not in data cut before the 1m bars).
            h1 = _resampled(m1, Timeframe.M1, Timeframe.H1)
            out[Timeframe.H1] = _before_derived(by_tf[Timeframe.H1], h1)
            if Timeframe.D1 in by_tf and h1.height:
                out[Timeframe.D1] = _before_derived(by_tf[Timeframe.D1], _resampled(h1, Timeframe.H1, Timeframe.D1))
        bars[role] = out
    return MarketFrames(raw.symbols, raw.trades, bars)


def _resampled(bars: pl.DataFrame, src: Timeframe, dst: Timeframe) -> pl.DataFrame:
    out, _ = resample_bars_with_report(bars, src, dst)
    return out


def _before_derived(stored: pl.DataFrame, derived: pl.DataFrame) -> pl.DataFrame:
    """Return the stored bars opening before the first derived one, then the derived ones."""
    if derived.height == 0:
        return stored
    first = int(derived.item(0, "open_us"))
    return pl.concat([stored.filter(pl.col("open_us") < first), derived.select(stored.columns)], how="vertical")


def perturb_after(raw: MarketFrames, t_us: int, rng: np.random.Generator, *, scale: float = 0.02) -> MarketFrames:
    """``raw`` with every trade after ``t_us`` and every bar not closed by ``t_us`` randomly changed.

    Trades after ``t_us``: each gets its own price factor and a larger size; about a third are moved
    later (by up to 1 s, never past the last trade), a tenth dropped, and new ones added (copies of
    future trades at new times inside the trades' span, one of them 1 µs after ``t_us``, the nearest a
    future trade can be, when ``t_us`` is inside the span).
    Bars not closed by ``t_us``: OHLC scaled by one factor per bar (so it stays a valid bar), volume by
    another, and ``is_filled`` flipped on about half of them. Nothing at or before ``t_us`` changes.
    """
    trades: dict[str, pl.DataFrame] = {}
    for role, df in raw.trades.items():
        trades[role] = _perturb_trades(df, t_us, rng, scale)
    bars: dict[str, dict[Timeframe, pl.DataFrame]] = {}
    for role, by_tf in raw.bars.items():
        bars[role] = {}
        for tf, df in by_tf.items():
            future = ((df["open_us"] + tf.us) > t_us).to_numpy()
            fp = pl.Series(np.where(future, np.exp(scale * rng.standard_normal(df.height)), 1.0))
            fv = pl.Series(np.where(future, np.exp(rng.standard_normal(df.height)), 1.0))
            changed = [*(pl.col(c) * fp for c in _OHLC), pl.col("volume") * fv]
            out = df.with_columns(*changed)
            if "is_filled" in df.columns:
                out = _flip_filled(out, future & (rng.random(df.height) < 0.5))
            bars[role][tf] = out
    return MarketFrames(raw.symbols, trades, bars)


_OHLC = ("open", "high", "low", "close")


def _flip_filled(df: pl.DataFrame, flip_T: npt.NDArray[np.bool_]) -> pl.DataFrame:
    """Flip ``is_filled`` on the rows of ``flip_T``.

    A bar made filled becomes one (OHLC the carried previous close, volume 0), so the bars stay
    consistent and resample into valid coarser bars.
    """
    was = df["is_filled"].fill_null(False).to_numpy()
    to_filled = pl.Series(flip_T & ~was)
    carried = pl.when(to_filled).then(None).otherwise(pl.col("close")).forward_fill().fill_null(pl.col("close"))
    return df.with_columns(
        *(pl.when(to_filled).then(carried).otherwise(pl.col(c)).alias(c) for c in _OHLC),
        pl.when(to_filled).then(0.0).otherwise(pl.col("volume")).alias("volume"),
        pl.Series("is_filled", was ^ flip_T),
    )


def _perturb_trades(df: pl.DataFrame, t_us: int, rng: np.random.Generator, scale: float) -> pl.DataFrame:
    ts = df["ts_us"].to_numpy()
    after = ts > t_us
    n_after = int(after.sum())
    if n_after == 0:
        return df
    f = np.where(after, np.exp(scale * rng.standard_normal(df.height)), 1.0)
    last = int(ts[-1])
    moved = np.where(after & (rng.random(df.height) < 0.3), ts + rng.integers(0, 1_000_000, df.height), ts)
    out = df.with_columns(
        pl.col("price") * pl.Series(f),
        pl.col("qty") * pl.Series(np.where(after, 1.5, 1.0)),
        pl.Series("ts_us", np.minimum(moved, last), dtype=pl.Int64),
    ).filter(~pl.Series(after & (rng.random(df.height) < 0.1)))
    future = df.filter(pl.Series(after))
    n_new = max(1, n_after // 10)
    # Inside the trades' own span (a trade years before the tick period would make years of 1s bars).
    lo = max(t_us + 1, int(ts[0]))
    new_ts = np.sort(rng.integers(lo, last + 1, n_new))
    new_ts[0] = lo
    added = future.sample(n_new, with_replacement=True, seed=int(rng.integers(2**31))).with_columns(
        pl.Series("ts_us", new_ts, dtype=pl.Int64),
        pl.col("price") * pl.Series(np.exp(scale * rng.standard_normal(n_new))),
    )
    out = pl.concat([out, added.select(out.columns)]).sort("ts_us", maintain_order=True)
    if "trade_id" in out.columns:
        # Moved and added trades get fresh ids after the past ones: (ts_us, trade_id) stays sorted and unique.
        n_past = int((ts <= t_us).sum())
        past_ids = df["trade_id"].to_numpy()[:n_past]
        base = int(past_ids[-1]) + 1 if n_past else 0
        ids = np.concatenate([past_ids, base + np.arange(out.height - n_past)])
        out = out.with_columns(pl.Series("trade_id", ids, dtype=pl.Int64))
    return out


CnnFn = Callable[[MarketFrames, npt.NDArray[np.int64]], CnnBlocks]
"""Computes the CNN rows the state gathers at the given times, from ``frames`` only (the CNN bridge's
served rows; the features layer never runs a model, so the caller injects it)."""


def state_blocks(
    layout: StateLayout,
    cfg: FeaturesConfig,
    stats: FeatureStats = FeatureStats(),
    *,
    fit_range: TimeRange | None = None,
    cnn: CnnFn | None = None,
    canary_early_us: Mapping[str, int] | None = None,
) -> BlockFn:
    """Return the standard block function: build the market features from ``frames``, gather each block at ``t``.

    ``fit_range``: refit the feature statistics on ``frames`` over that range each time (so a statistic
    that looked past ``t`` shows), instead of using ``stats``. ``cnn``: fill the CNN blocks with real
    rows computed from ``frames``. ``canary_early_us`` (tests only): plant a leak, gathering each named
    block ``µs`` *after* ``t``, e.g. ``{"eth_1h": 1}`` shows a 1h bar 1 µs before it closes.
    """
    early = dict(canary_early_us or {})

    def compute(frames: MarketFrames, t_B: npt.NDArray[np.int64]) -> Mapping[str, npt.NDArray[np.floating]]:
        fitted = stats if fit_range is None else fit_feature_stats(frames, fit_range)
        cnn_blocks = None if cnn is None else cnn(frames, np.concatenate([t_B, *(t_B + d for d in early.values())]))
        builder = BatchStateBuilder(layout, build_market_features(frames, layout, cfg, fitted, cnn=cnn_blocks))
        out = dict(builder.gather_blocks(t_B))
        for block, d in early.items():
            out[block] = builder.gather_blocks(t_B + d)[block]
        return out

    return compute


@dataclass
class BlockResult:
    """How one block fared: checks made, times with any difference, the largest difference."""

    checked: int = 0
    differing: int = 0
    max_abs_diff: float = 0.0
    first_bad_t_us: int | None = None

    @property
    def ok(self) -> bool:
        """Whether no sampled time differed."""
        return self.differing == 0


@dataclass
class LookaheadReport:
    """Per block results of :meth:`LookaheadCheck.run`."""

    times_us: list[int]
    blocks: dict[str, BlockResult] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether no block leaked."""
        return all(b.ok for b in self.blocks.values())

    def leaky(self) -> list[str]:
        """Return the names of the blocks that leaked, in registration order."""
        return [name for name, b in self.blocks.items() if not b.ok]


class LookaheadCheck:
    """A registry of block functions and the check that runs them (see the module docstring).

    Every block must be *exactly* equal (``atol`` 0) unless ``tolerances`` names it (``{block name:
    atol}``, names as in the report: ``group/block``, e.g. ``state/eth_1h``). The standard state blocks
    and the CNN blocks need no tolerance (see the module docstring).
    """

    def __init__(self, *, atol: float = 0.0, tolerances: Mapping[str, float] | None = None) -> None:
        self.atol = atol
        self.tolerances = dict(tolerances or {})
        self._fns: dict[str, BlockFn] = {}

    def tolerance(self, block: str) -> float:
        """Return the largest difference block ``block`` may show (0: bit-identical)."""
        return self.tolerances.get(block, self.atol)

    def register(self, name: str, fn: BlockFn) -> None:
        """Add a group of blocks (its function returns a dict of named block values)."""
        if name in self._fns:
            raise ValueError(f"look-ahead check: {name!r} is already registered")
        self._fns[name] = fn

    def _compute(self, frames: MarketFrames, t_B: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[np.floating]]:
        out: dict[str, npt.NDArray[np.floating]] = {}
        for group, fn in self._fns.items():
            for block, values in fn(frames, t_B).items():
                out[f"{group}/{block}"] = np.asarray(values)
        return out

    def run(
        self,
        raw: MarketFrames,
        times_us: npt.ArrayLike,
        *,
        rng: np.random.Generator,
        perturb: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> LookaheadReport:
        """Check every registered block at each of ``times_us`` (see the module docstring)."""
        t_all = np.asarray(times_us, dtype=np.int64).reshape(-1)
        end_us = _end_of(raw)
        full = self._compute(derive_frames(raw, end_us), t_all)
        report = LookaheadReport([int(t) for t in t_all], {name: BlockResult() for name in full})
        for i, t in enumerate(t_all):
            t_1 = np.array([t], dtype=np.int64)
            variants = [derive_frames(raw.until(int(t)), min(int(t), end_us))]
            if perturb:
                variants.append(derive_frames(perturb_after(raw, int(t), rng), end_us))
            for frames in variants:
                got = self._compute(frames, t_1)
                for name, ref in full.items():
                    res = report.blocks[name]
                    res.checked += 1
                    diff = _max_diff(got[name], ref[i : i + 1]) if name in got else np.inf
                    if not diff <= self.tolerance(name):
                        res.differing += 1
                        res.first_bad_t_us = int(t) if res.first_bad_t_us is None else res.first_bad_t_us
                    res.max_abs_diff = max(res.max_abs_diff, diff)
            if progress is not None:
                progress(i + 1, len(t_all))
        return report


def _max_diff(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))


def _end_of(raw: MarketFrames) -> int:
    """Find where the data ends.

    That is the close of the last trade's second (1s bars are made up to there), or, without trades, the
    close of the last stored bar.
    """
    ends = [(int(df.item(-1, "ts_us")) // 1_000_000 + 1) * 1_000_000 for df in raw.trades.values() if df.height]
    if ends:
        return max(ends)
    return max(
        int(df.item(-1, "open_us")) + tf.us for by_tf in raw.bars.values() for tf, df in by_tf.items() if df.height
    )


def sample_times(
    raw: MarketFrames,
    n: int,
    rng: np.random.Generator,
    *,
    role: str = "eth",
    closes: int = 0,
    trades: int = 0,
) -> npt.NDArray[np.int64]:
    """Check times (sorted, unique) where leaks live, not only where random times land.

    * ``n`` random times: half over the whole history (the earliest bar of any timeframe to the end of
      the data), half in the tick period (all over the history without trades);
    * per timeframe of ``role``'s bars, ``closes`` bar closes ``c`` drawn from the later half of its
      bars (past the indicator warm-up), each as ``c − 1 µs``, ``c`` and ``c + 1 µs``: a bar shown even
      1 µs early, or a trade at the close counted on the wrong side, differs at one of them;
    * ``trades`` trade timestamps ``ts`` of ``role``, each as ``ts − 1 µs``, ``ts``, ``ts + 1 µs``.
    """
    end = _end_of(raw)
    by_tf = {tf: df for tf, df in raw.bars.get(role, {}).items() if df.height}
    first = min((int(df.item(0, "open_us")) for df in by_tf.values()), default=end - 1)
    span = raw.tick_span_us(role)
    lo, hi = span if span is not None else (first, end)
    n_hist = n // 2 if span is not None else n
    parts = [rng.integers(first, end, size=n_hist, dtype=np.int64), rng.integers(lo, hi + 1, size=n - n_hist)]
    at = np.array([-1, 0, 1], dtype=np.int64)
    for tf, df in sorted(by_tf.items(), key=lambda kv: kv[0].us):
        open_us = df["open_us"].to_numpy()
        k = rng.integers(open_us.size // 2, open_us.size, size=closes)
        parts.append(((open_us[k] + tf.us)[:, None] + at[None, :]).reshape(-1))
    ts = raw.trades[role]["ts_us"].to_numpy() if role in raw.trades else np.zeros(0, np.int64)
    if ts.size and trades:
        parts.append((ts[rng.integers(0, ts.size, size=trades)][:, None] + at[None, :]).reshape(-1))
    return np.unique(np.concatenate(parts).astype(np.int64))
