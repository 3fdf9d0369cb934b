"""Per-bar channels: TA-Lib agreement, warm-up, c_ref semantics, gather vs a loop oracle, bad input."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest
import talib

from rltrade.features.bar_channels import (
    BAR_CHANNEL_DESCRIPTIONS,
    BAR_CHANNEL_NAMES,
    BarChannels,
    BarChannelSpec,
    FeatureInputError,
    bar_channels_from_frame,
    bar_windows,
    compute_bar_channels,
    extend_bar_channels,
    trailing_medians,
)

F64 = npt.NDArray[np.float64]


def random_bars(n: int, seed: int) -> tuple[F64, F64, F64, F64, F64]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-3, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 1e-3, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 1e-3, n)))
    volume = rng.lognormal(1.0, 1.0, n)
    volume[rng.random(n) < 0.05] = 0.0
    return open_, high, low, close, volume


def test_channel_names_are_documented() -> None:
    assert len(BAR_CHANNEL_NAMES) == 8
    assert set(BAR_CHANNEL_DESCRIPTIONS) == set(BAR_CHANNEL_NAMES)


def test_indicator_channels_match_talib_and_warmup_is_masked() -> None:
    o, h, lo, c, v = random_bars(400, seed=1)
    spec = BarChannelSpec()
    ch = compute_bar_channels(o, h, lo, c, v, spec)
    rsi = talib.RSI(c, timeperiod=14)
    _, _, hist = talib.MACD(c, fastperiod=12, slowperiod=26, signalperiod=9)
    atr = talib.ATR(h, lo, c, timeperiod=14)
    expected_valid = ~(np.isnan(rsi) | np.isnan(hist) | np.isnan(atr))
    np.testing.assert_array_equal(ch.valid_T, expected_valid)
    assert int(np.argmax(ch.valid_T)) == spec.warmup_bars == 33
    ok = ch.valid_T
    np.testing.assert_allclose(ch.per_bar_T4[ok, 1], (rsi[ok] - 50) / 50, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ch.per_bar_T4[ok, 2], hist[ok] / atr[ok], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ch.per_bar_T4[ok, 3], atr[ok] / c[ok], rtol=1e-6)
    assert np.all(ch.per_bar_T4[~ok, 1:] == 0.0)
    assert np.isfinite(ch.per_bar_T4).all()


def test_custom_indicator_periods_change_the_warmup() -> None:
    o, h, lo, c, v = random_bars(200, seed=2)
    spec = BarChannelSpec(rsi_period=50, macd_fast=5, macd_slow=10, macd_signal=3, atr_period=7)
    ch = compute_bar_channels(o, h, lo, c, v, spec)
    assert spec.warmup_bars == 50 == int(np.argmax(ch.valid_T))
    np.testing.assert_allclose(ch.per_bar_T4[50:, 1], (talib.RSI(c, 50)[50:] - 50) / 50, rtol=1e-6, atol=1e-7)


def test_log_volume_matches_a_rolling_median_oracle() -> None:
    o, h, lo, c, v = random_bars(120, seed=3)
    spec = BarChannelSpec(volume_window=20)
    ch = compute_bar_channels(o, h, lo, c, v, spec)
    for i in range(len(v)):
        med = float(np.median(v[max(0, i - 19) : i + 1]))
        eps = 1e-3 * med + 1e-12
        assert ch.per_bar_T4[i, 0] == pytest.approx(np.log((v[i] + eps) / (med + eps)), rel=1e-5, abs=1e-6)
    assert ch.per_bar_T4[:, 0].min() > -7.0  # zero volume: log(1e-3), not -inf


def test_windows_match_a_loop_oracle_and_use_the_last_close_as_reference() -> None:
    o, h, lo, c, v = random_bars(150, seed=4)
    ch = compute_bar_channels(o, h, lo, c, v)
    w = 50
    idx = np.array([-1, 0, 10, 40, 49, 100, 149])
    x, mask = bar_windows(ch, idx, w)
    assert x.shape == (7, w, 8) and x.dtype == np.float32 and mask.shape == (7, w)
    for b, e in enumerate(idx):
        for j in range(w):
            bar = e - (w - 1) + j
            if e < 0 or bar < 0:
                assert not mask[b, j] and np.all(x[b, j] == 0.0)
                continue
            rel = np.log(np.array([o[bar], h[bar], lo[bar], c[bar]]) / c[e])
            np.testing.assert_allclose(x[b, j, :4], rel, rtol=1e-5, atol=1e-7)
            np.testing.assert_array_equal(x[b, j, 4:], ch.per_bar_T4[bar])
            assert mask[b, j] == (bar >= 33)
        if e >= 0:
            assert x[b, -1, 3] == 0.0  # close of the last bar relative to itself


def test_window_of_a_closed_bar_ignores_later_bars() -> None:
    """The window ending at bar e is the same whether or not later bars exist (CNN cache key)."""
    o, h, lo, c, v = random_bars(300, seed=5)
    full = compute_bar_channels(o, h, lo, c, v)
    e = 180
    prefix = compute_bar_channels(o[: e + 1], h[: e + 1], lo[: e + 1], c[: e + 1], v[: e + 1])
    x_full, m_full = bar_windows(full, np.array([e]), 100)
    x_pre, m_pre = bar_windows(prefix, np.array([e]), 100)
    np.testing.assert_array_equal(x_full, x_pre)
    np.testing.assert_array_equal(m_full, m_pre)


def test_degenerate_data_stays_finite_and_clipped() -> None:
    n = 200
    c = np.full(n, 50.0)
    c[100] = 50.5  # one jump after a flat run: ATR ~ 0 before it
    o = np.concatenate([[c[0]], c[:-1]])
    h, lo = np.maximum(o, c), np.minimum(o, c)
    v = np.zeros(n)
    v[150] = 1e6
    spec = BarChannelSpec()
    ch = compute_bar_channels(o, h, lo, c, v, spec)
    assert np.isfinite(ch.per_bar_T4).all()
    assert np.abs(ch.per_bar_T4).max() <= spec.clip
    x, _ = bar_windows(ch, np.arange(n), 300)
    assert np.isfinite(x).all()


def test_from_frame_equals_arrays() -> None:
    o, h, lo, c, v = random_bars(80, seed=6)
    frame = pl.DataFrame(
        {"open_us": np.arange(80) * 60_000_000, "open": o, "high": h, "low": lo, "close": c, "volume": v}
    )
    a = bar_channels_from_frame(frame)
    b = compute_bar_channels(o, h, lo, c, v)
    np.testing.assert_array_equal(a.per_bar_T4, b.per_bar_T4)
    with pytest.raises(FeatureInputError, match="missing column"):
        bar_channels_from_frame(frame.drop("volume"))
    with pytest.raises(FeatureInputError, match="row 1 is not after row 0"):
        bar_channels_from_frame(frame.reverse())


def test_empty_series_gives_empty_windows() -> None:
    ch = compute_bar_channels([], [], [], [], [])
    x, mask = bar_windows(ch, np.array([-1, -1]), 10)
    assert x.shape == (2, 10, 8) and not mask.any() and not x.any()


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [("close", np.nan, "close must be finite and > 0; row 7"), ("volume", -1.0, "volume must be finite and >= 0")],
)
def test_bad_values_name_the_column_and_row(column: str, value: float, match: str) -> None:
    o, h, lo, c, v = random_bars(20, seed=7)
    cols = {"open": o, "high": h, "low": lo, "close": c, "volume": v}
    cols[column] = cols[column].copy()
    cols[column][7] = value
    with pytest.raises(FeatureInputError, match=match):
        compute_bar_channels(*cols.values(), what="ETHUSDT 1m")


def test_inconsistent_bar_and_bad_indices_are_rejected() -> None:
    o, h, lo, c, v = random_bars(20, seed=8)
    h2 = h.copy()
    h2[3] = lo[3] * 0.99
    with pytest.raises(FeatureInputError, match="row 3 is not a valid bar"):
        compute_bar_channels(o, h2, lo, c, v)
    with pytest.raises(FeatureInputError, match="equally long"):
        compute_bar_channels(o, h, lo, c, v[:-1])
    ch = compute_bar_channels(o, h, lo, c, v)
    with pytest.raises(FeatureInputError, match=r"idx_B\[1\] = 20 is outside"):
        bar_windows(ch, np.array([0, 20]))
    with pytest.raises(FeatureInputError, match="integer"):
        bar_windows(ch, np.array([1.0]))


def test_a_computation_started_mid_series_agrees_after_history_bars() -> None:
    """What a streaming builder relies on: recomputing on the last bars reproduces the batch values."""
    o, h, lo, c, v = random_bars(1500, seed=9)
    spec = BarChannelSpec()
    full = compute_bar_channels(o, h, lo, c, v, spec)
    s = 400
    part = compute_bar_channels(o[s:], h[s:], lo[s:], c[s:], v[s:], spec)
    k = spec.history_bars
    np.testing.assert_allclose(part.per_bar_T4[k:], full.per_bar_T4[s + k :], rtol=0, atol=2e-6)
    x_full, _ = bar_windows(full, np.array([1499]), 300)
    x_part, _ = bar_windows(part, np.array([1499 - s]), 300)
    np.testing.assert_allclose(x_part, x_full, rtol=0, atol=2e-6)
    assert np.abs(part.per_bar_T4[: k // 2] - full.per_bar_T4[s : s + k // 2]).max() > 1e-3  # it does matter


def _live_series(n: int, *, seed: int) -> tuple[F64, BarChannels, int, int]:
    """``n`` random OHLCV bars, their channels over the whole series, and the live builder's ``keep`` (a
    300-bar window's) and ``warm`` (``history_bars + 1``) for the default spec."""
    o, h, lo, c, v = random_bars(n, seed=seed)
    spec = BarChannelSpec()
    return (
        np.stack([o, h, lo, c, v], axis=1),
        compute_bar_channels(o, h, lo, c, v, spec),
        spec.history_bars + 301,
        spec.history_bars + 1,
    )


def _assert_extended_tail(
    ch: BarChannels, full: BarChannels, ohlcv: npt.NDArray[np.float64], end: int, rows: int, w: int
) -> None:
    """``ch`` holds the full series' bars up to ``end``: prices and flags exactly, the newest ``rows`` per-bar rows
    and the ``w``-bar window ending at ``end`` within 2e-6 (the indicators' warm-up, forgotten)."""
    n = ch.n_bars
    np.testing.assert_array_equal(ch.log_ohlc_T4, np.log(ohlcv[end - n : end, :4]))
    np.testing.assert_array_equal(ch.valid_T, full.valid_T[end - n : end])
    np.testing.assert_allclose(ch.per_bar_T4[n - rows :], full.per_bar_T4[end - rows : end], rtol=0, atol=2e-6)
    x, mask = bar_windows(ch, np.array([n - 1]), w)
    x_full, mask_full = bar_windows(full, np.array([end - 1]), w)
    np.testing.assert_allclose(x, x_full, rtol=0, atol=2e-6)
    assert np.array_equal(mask, mask_full)


def test_extending_by_the_new_bars_agrees_with_the_full_series_in_every_window_row() -> None:
    """The live builder's update: only the new bars' rows, from their last ``history_bars + 1`` bars."""
    ohlcv, full, keep, warm = _live_series(2000, seed=11)
    w, end = 300, 700
    ch = compute_bar_channels(*(ohlcv[end - keep : end, j] for j in range(5)), full.spec)
    for new in np.random.default_rng(2).integers(1, 40, 35):
        end += int(new)
        ch = extend_bar_channels(ch, ohlcv[end - warm - new : end], int(new))
        assert ch.n_bars == keep
        _assert_extended_tail(ch, full, ohlcv, end, w, w)
    # the volume channel is the full series' own rolling median (no warm-up to forget)
    np.testing.assert_allclose(ch.per_bar_T4[-w:, 0], full.per_bar_T4[end - w : end, 0], rtol=0, atol=1e-6)


def test_a_young_series_grows_by_its_new_bars_up_to_keep_then_moves_on() -> None:
    """A live series younger than the kept tail: extended from its start, not recomputed on every bar."""
    ohlcv, full, keep, warm = _live_series(1500, seed=13)
    w, end = 300, warm + 5  # the series' first bars, far fewer than keep
    ch = compute_bar_channels(*(ohlcv[:end, j] for j in range(5)), full.spec)
    lengths = []
    for new in np.random.default_rng(3).integers(1, 30, 60):
        end += int(new)
        ch = extend_bar_channels(ch, ohlcv[end - warm - new : end], int(new), keep=keep)
        lengths.append(ch.n_bars)
        assert ch.n_bars == min(end, keep)
        _assert_extended_tail(ch, full, ohlcv, end, ch.n_bars, w)
    assert lengths[0] < keep and lengths[-1] == keep, "it grew, then moved on at keep"
    with pytest.raises(ValueError, match="at most 10 bars in prev"):
        extend_bar_channels(ch, ohlcv[end - warm - 1 : end], 1, keep=10)


def test_extending_checks_the_new_bars_and_its_arguments() -> None:
    o, h, lo, c, v = random_bars(800, seed=12)
    ohlcv = np.stack([o, h, lo, c, v], axis=1)
    spec = BarChannelSpec()
    ch = compute_bar_channels(o[:600], h[:600], lo[:600], c[:600], v[:600], spec)
    warm = spec.history_bars + 1
    bad = ohlcv[603 - warm - 3 : 603].copy()
    bad[-1, 3] = np.nan
    with pytest.raises(FeatureInputError, match="ETH 1s: close must be finite and > 0; row 2"):
        extend_bar_channels(ch, bad, 3, what="ETH 1s")
    bad[-1, 3], bad[-1, 1] = bad[-1, 0], bad[-1, 2] * 0.5  # high below low
    with pytest.raises(FeatureInputError, match="row 2 is not a valid bar"):
        extend_bar_channels(ch, bad, 3)
    with pytest.raises(ValueError, match="the newest 304 bars, got new=3 and 303 bars"):
        extend_bar_channels(ch, ohlcv[:303], 3)
    with pytest.raises(ValueError, match="0 < new < 600"):
        extend_bar_channels(ch, ohlcv[: warm + 600], 600)


@pytest.mark.parametrize("window", [1, 2, 7, 300])
def test_trailing_medians_are_numpys_bit_for_bit(window: int) -> None:
    """One window (the live path) and several (the sliding path) against np.median, ties and zeros included."""
    rng = np.random.default_rng(window)
    for trial in range(50):
        v = rng.exponential(1.0, window + 20)
        if trial % 3 == 0:
            v = np.round(v, 1)  # ties, and zero volumes
        for new in (1, 2, 20):
            want = np.median(np.lib.stride_tricks.sliding_window_view(v, window)[-new:], axis=1)
            got = trailing_medians(v, window, new)
            assert got.dtype == np.float64 and np.array_equal(got, want), (window, trial, new)
