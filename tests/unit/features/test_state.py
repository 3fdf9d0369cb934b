"""State builders: batch gather, streaming == batch (synthetic and real), flags, missing data."""

from __future__ import annotations

from functools import cache

import numpy as np
import polars as pl
import pytest

from rltrade.config import DataConfig, FeaturesConfig, LayoutConfig, SyntheticConfig
from rltrade.data.market import MarketFrames, load_market
from rltrade.features.layout import build_layout
from rltrade.features.market_features import build_market_features, fit_feature_stats
from rltrade.features.state_batch import RETURN_CLIP, RETURN_SCALE, BatchStateBuilder
from rltrade.features.state_stream import FLOAT_TOLERANCE, StreamingStateBuilder
from rltrade.types import US_PER_SECOND, Timeframe
from tests.support.real_data import real_market


@cache
def small_market() -> MarketFrames:
    return load_market(DataConfig(synthetic=SyntheticConfig(seed=3, history_days=12, tick_days=0.03)))


def _builders(frames: MarketFrames, name: str) -> tuple[BatchStateBuilder, FeaturesConfig]:
    cfg = FeaturesConfig(layout=LayoutConfig(name=name))  # type: ignore[arg-type]
    layout = build_layout(cfg.layout)
    return BatchStateBuilder(layout, build_market_features(frames, layout, cfg)), cfg


def test_batch_gather_shapes_flags_and_no_nan() -> None:
    frames = small_market()
    batch, _ = _builders(frames, "demo")
    layout = batch.layout
    start, end = frames.tick_span_us()  # type: ignore[misc]
    t_B = np.linspace(start + 120 * US_PER_SECOND, end, 64).astype(np.int64)
    x = batch.gather(t_B)
    assert x.shape == (64, layout.size) and x.dtype == np.float32
    assert np.isfinite(x).all()
    flags = x[:, layout.block("flags").slice]
    names = layout.flag_names
    assert flags[:, names.index("has_eth_1m")].all()
    assert flags[:, names.index("has_regime")].all()
    assert not flags[:, names.index("has_cnn_hidden")].any()
    # 12 days of history cannot fill a 48-bar daily window: flagged as warm-up, never NaN.
    assert flags[:, names.index("warmup")].all()
    # The window's last close is the reference price: channel 3 of the last row is exactly 0.
    last_rows = x[:, layout.block("eth_1m").slice].reshape(64, 48, 8)[:, -1, 3]
    assert np.all(last_rows == 0)


def test_closed_window_is_constant_until_the_next_bar_closes() -> None:
    batch, _ = _builders(small_market(), "demo")
    start, _ = small_market().span_us()
    hour = start + 100 * 3_600_000_000
    inside = np.array([hour, hour + 1, hour + 1_800_000_000, hour + 3_599_999_999])
    h1 = batch.gather_blocks(inside)["eth_1h"]
    assert np.array_equal(h1[0], h1[-1])
    nxt = batch.gather_blocks(np.array([hour + 3_600_000_000]))["eth_1h"]
    assert not np.array_equal(h1[0], nxt[0])


def test_before_any_data_everything_is_zero_and_flagged_off() -> None:
    frames = small_market()
    batch, _ = _builders(frames, "demo")
    first, _ = frames.span_us()
    x = batch.gather(np.array([first - 1]))
    layout = batch.layout
    flags = x[0, layout.block("flags").slice]
    assert np.all(x[0, : layout.block("flags").start] == 0)
    assert flags[layout.flag_names.index("ticks_stale")] == 1
    assert all(flags[i] == 0 for i, n in enumerate(layout.flag_names) if n.startswith("has_"))


def test_stale_feed_is_flagged() -> None:
    frames = small_market()
    batch, cfg = _builders(frames, "demo")
    _, end = frames.tick_span_us()  # type: ignore[misc]
    names = batch.layout.flag_names
    fresh, stale = batch.gather(np.array([end, end + int(cfg.stale_after_s * US_PER_SECOND) + 1]))[
        :, batch.layout.block("flags").slice
    ][:, names.index("ticks_stale")]
    assert (fresh, stale) == (0.0, 1.0)


def _stream_vs_batch(
    frames: MarketFrames, name: str, t0: int, n_steps: int, step_us: int, updates: dict[str, int] | None = None
) -> dict[str, float]:
    """The largest |stream − batch| per block over the clock; ``updates`` receives the stream's channel updates."""
    batch, cfg = _builders(frames, name)
    stream = StreamingStateBuilder(batch.layout, cfg, frames, t0)
    trades = frames.trade_stream(t0)
    clock = t0 + step_us * np.arange(1, n_steps + 1)
    worst: dict[str, float] = {}
    j = 0
    for t in clock:
        while j < len(trades) and trades[j][1] <= t:
            role, ts, p, q, s = trades[j]
            stream.update(role, ts, p, q, s)
            j += 1
        live = stream.blocks_at(int(t))
        ref = batch.gather_blocks(np.array([t]))
        for block, values in ref.items():
            diff = float(np.max(np.abs(live[block].astype(np.float64) - values), initial=0.0))
            worst[block] = max(worst.get(block, 0.0), diff)
            if block in ("flags", "pivots"):
                assert np.array_equal(live[block], values), f"{block} differs at t={t}"
    assert j > 0, "no trade was streamed"
    if updates is not None:
        updates.update(stream.channel_updates)
    return worst


@pytest.mark.parametrize("name", ["demo", "basic"])
def test_streaming_equals_batch_on_synthetic(name: str) -> None:
    frames = small_market()
    start, end = frames.tick_span_us()  # type: ignore[misc]
    t0 = start + 400 * US_PER_SECOND
    updates: dict[str, int] = {}
    worst = _stream_vs_batch(frames, name, t0, (end - t0) // US_PER_SECOND - 1, US_PER_SECOND, updates)
    assert max(worst.values()) <= FLOAT_TOLERANCE, worst
    if name == "basic":  # no bar windows, so no channels
        assert updates == {"full": 0, "extended": 0}
    else:  # most reads after a bar closes compute only the new bars' channels (extend_bar_channels)
        assert updates["extended"] > updates["full"] > 0, updates


@pytest.mark.real
def test_streaming_equals_batch_on_the_real_tick_window() -> None:
    frames = real_market()
    start, end = frames.tick_span_us()  # type: ignore[misc]
    t0 = start + 320 * US_PER_SECOND
    updates: dict[str, int] = {}
    worst = _stream_vs_batch(frames, "full", t0, (end - t0) // US_PER_SECOND - 1, US_PER_SECOND, updates)
    assert max(worst.values()) <= FLOAT_TOLERANCE, worst
    assert updates["extended"] > 0, updates


def test_fitted_stats_record_their_range_and_only_see_it() -> None:
    from rltrade.data.splits import TimeRange

    frames = small_market()
    start, end = frames.tick_span_us()  # type: ignore[misc]
    fit = TimeRange(start, (start + end) // 2)
    stats = fit_feature_stats(frames, fit)
    assert stats.qty_scale_fitted_on == fit
    trades = frames.trades["eth"]
    inside = trades.filter((pl.col("ts_us") >= fit.start_us) & (pl.col("ts_us") < fit.end_us))
    assert stats.qty_scale == pytest.approx(float(inside["qty"].median()))
    changed = frames.trades["eth"].with_columns(
        pl.when(pl.col("ts_us") >= fit.end_us).then(pl.col("qty") * 10).otherwise(pl.col("qty")).alias("qty")
    )
    frames2 = MarketFrames(frames.symbols, {"eth": changed, "btc": frames.trades["btc"]}, frames.bars)
    assert fit_feature_stats(frames2, fit) == stats


def test_return_blocks_before_their_series_has_a_bar_are_zero_and_flagged_off() -> None:
    """Demo layout with returns on data cut before the trade period: the 1s series is empty (no IndexError)."""
    frames = small_market()
    start, _ = frames.tick_span_us()  # type: ignore[misc]
    t = start - 3_600 * US_PER_SECOND
    cut = frames.until(t)
    assert cut.bars["eth"][Timeframe.S1].height == 0
    cfg = FeaturesConfig(layout=LayoutConfig(name="demo", returns=True))
    layout = build_layout(cfg.layout)
    blocks = BatchStateBuilder(layout, build_market_features(cut, layout, cfg)).gather_blocks(np.array([t, t + 1]))
    names = layout.flag_names
    for name in ("eth_ret_1s", "btc_ret_1s"):
        assert blocks[name].shape == (2, 30) and not blocks[name].any()
        assert not blocks["flags"][:, names.index(f"has_{name}")].any()
    # The 1m series has bars by then: its returns are filled and flagged on.
    assert blocks["eth_ret_1m"].any() and blocks["flags"][:, names.index("has_eth_ret_1m")].all()


def test_return_blocks_are_the_scaled_log_returns_of_their_own_series_on_every_gather() -> None:
    """The log closes are cached per series: each block still reads its own symbol's and timeframe's."""
    frames = small_market()
    builder, _ = _builders(frames, "basic")
    start, end = frames.tick_span_us()  # type: ignore[misc]
    t_B = np.random.default_rng(5).integers(start + 120 * US_PER_SECOND, end, 16)
    first, again = builder.gather_blocks(t_B), builder.gather_blocks(t_B[::-1])
    for role in ("eth", "btc"):
        for tf, n in ((Timeframe.S1, 30), (Timeframe.M1, 15)):
            bars = builder.features.series[(role, tf)].bars
            opens = np.asarray(bars.open_us_T, dtype=np.int64)
            last = np.searchsorted(opens + tf.us, t_B, side="right") - 1  # the newest bar closed by t
            logc = np.log(np.asarray(bars.close_T, dtype=np.float64))
            expected = np.stack([np.diff(logc[i - n : i + 1]) for i in last]) * RETURN_SCALE
            name = f"{role}_ret_{tf.value}"
            np.testing.assert_allclose(first[name], np.clip(expected, -RETURN_CLIP, RETURN_CLIP), rtol=1e-6, atol=1e-6)
            np.testing.assert_array_equal(again[name], first[name][::-1])


def test_a_training_state_never_sees_a_later_trade_through_the_fitted_stats() -> None:
    """The fitted qty_scale is causal inside its fit range: later trades change no earlier ticks block."""
    from rltrade.data.splits import TimeRange

    frames = small_market()
    start, end = frames.tick_span_us()  # type: ignore[misc]
    fit = TimeRange(start, end)
    t = start + (end - start) // 3
    changed = frames.trades["eth"].with_columns(
        pl.when(pl.col("ts_us") > t).then(pl.col("qty") * 10).otherwise(pl.col("qty")).alias("qty")
    )
    frames2 = MarketFrames(frames.symbols, {"eth": changed, "btc": frames.trades["btc"]}, frames.bars)
    cfg = FeaturesConfig(layout=LayoutConfig(name="demo"))
    layout = build_layout(cfg.layout)
    stats, stats2 = fit_feature_stats(frames, fit), fit_feature_stats(frames2, fit)
    assert stats.qty_scale != stats2.qty_scale  # the whole-range value moved ...
    q = np.array([t - 90 * US_PER_SECOND, t])
    ref = BatchStateBuilder(layout, build_market_features(frames, layout, cfg, stats)).gather_blocks(q)
    got = BatchStateBuilder(layout, build_market_features(frames2, layout, cfg, stats2)).gather_blocks(q)
    assert np.array_equal(ref["eth_ticks"], got["eth_ticks"])  # ... but no state up to t did
