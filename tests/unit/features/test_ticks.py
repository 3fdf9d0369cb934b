"""Ticks block: a loop oracle, window boundaries, batch == streaming, fitted normaliser, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest

from rltrade.data.splits import TimeRange
from rltrade.features.bar_channels import FeatureInputError
from rltrade.features.ticks import (
    N_TICK_FEATURES,
    TICK_FEATURE_NAMES,
    TickSpec,
    TickStream,
    fit_qty_scale,
    prepare_trades,
    tick_windows,
)
from rltrade.types import US_PER_SECOND
from tests.support.numpy_stream import numpy_tick_features_at

REAL = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "real"
S = US_PER_SECOND

Trades = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]


def random_trades(n: int, seed: int, *, mean_gap_us: float = 400_000.0) -> Trades:
    """Bursty arrivals (many same-timestamp trades), heavy-tailed sizes, random sides."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(mean_gap_us, n) * (rng.random(n) < 0.7)
    ts = 1_700_000_000 * S + np.cumsum(gaps).astype(np.int64)
    price = 2500.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-4, n)))
    qty = rng.pareto(1.5, n) + 0.001
    side = rng.choice(np.array([-1, 1]), n)
    return ts, price, qty, side


def oracle(trades: Trades, t: int, spec: TickSpec) -> tuple[np.ndarray, np.ndarray]:
    """Straight transcription of the module docstring, one trade at a time."""
    ts, price, qty, side = trades
    m, win = spec.max_trades, spec.window_us
    keep = [k for k in range(len(ts)) if t - win < ts[k] <= t][-m:][::-1]  # newest first
    x = np.zeros((m, N_TICK_FEATURES))
    mask = np.zeros(m, dtype=bool)
    if not keep:
        return x, mask
    total = sum(qty[k] for k in keep)
    vwap = sum(price[k] * qty[k] for k in keep) / total
    lo, hi = min(np.log(price[k]) for k in keep), max(np.log(price[k]) for k in keep)
    for row, k in enumerate(keep):
        dt = win if k == 0 else ts[k] - ts[k - 1]
        n_1s = sum(1 for j in range(k + 1) if ts[j] > ts[k] - spec.intensity_us)
        older = keep[row:]
        x[row] = [
            np.log(price[k] / price[keep[0]]),
            side[k] * np.log1p(qty[k] / spec.qty_scale),
            side[k],
            (t - ts[k]) / win,
            np.log1p(min(dt, win) / 1000) / np.log1p(win / 1000),
            0.0 if k == 0 else np.log(price[k] / price[k - 1]),
            sum(side[j] * qty[j] for j in older) / total,
            np.log(price[k] / vwap),
            np.log1p(n_1s),
            0.0 if hi == lo else 2 * (np.log(price[k]) - lo) / (hi - lo) - 1,
        ]
        mask[row] = True
    return x, mask


def stream_at(trades: Trades, t_B: np.ndarray, spec: TickSpec) -> tuple[np.ndarray, np.ndarray]:
    ts, price, qty, side = trades
    stream, j = TickStream(spec), 0
    xs, ms = [], []
    for t in np.sort(t_B):
        while j < len(ts) and ts[j] <= t:
            stream.update(int(ts[j]), float(price[j]), float(qty[j]), int(side[j]))
            j += 1
        x, m = stream.features_at(int(t))
        xs.append(x)
        ms.append(m)
    return np.stack(xs), np.stack(ms)


def test_names() -> None:
    assert len(TICK_FEATURE_NAMES) == N_TICK_FEATURES == 10


def test_batch_matches_the_loop_oracle() -> None:
    spec = TickSpec(window_us=20 * S, max_trades=25, qty_scale=0.7)
    trades = random_trades(400, seed=1)
    t_B = np.concatenate([trades[0][[0, 5, 100, 399]], trades[0][[50, 200]] + 1, [trades[0][0] - 1]])
    x, mask = tick_windows(prepare_trades(*trades, spec), t_B)
    assert x.shape == (7, 25, 10) and x.dtype == np.float32 and mask.dtype == np.bool_
    for b, t in enumerate(t_B):
        xo, mo = oracle(trades, int(t), spec)
        np.testing.assert_array_equal(mask[b], mo)
        np.testing.assert_allclose(x[b], xo, rtol=1e-5, atol=1e-6)
    assert mask[:-1].any(axis=1).all() and not mask[-1].any()


def test_window_boundaries() -> None:
    spec = TickSpec()  # 300 s, 300 trades
    t = 1_000 * S
    ts = np.array([t - 300 * S, t - 300 * S + 1, t - 10, t, t, t + 1], dtype=np.int64)
    n = len(ts)
    trades = prepare_trades(ts, np.full(n, 100.0), np.ones(n), np.ones(n, dtype=np.int64), spec)
    x, mask = tick_windows(trades, np.array([t]))
    # In: t - 300 s + 1 µs, t - 10 µs and both trades at exactly t. Out: exactly t - 300 s, and after t.
    assert mask[0].sum() == 4
    ages = x[0, :4, TICK_FEATURE_NAMES.index("age")]
    np.testing.assert_allclose(ages, [0.0, 0.0, 10 / (300 * S), (300 * S - 1) / (300 * S)], rtol=1e-6)


def test_at_most_max_trades_keeps_the_most_recent() -> None:
    spec = TickSpec()
    n = 1000
    ts = 10_000 * S + np.arange(n, dtype=np.int64) * 1000  # one trade per ms: 1000 trades in 1 s
    price = 100.0 + np.arange(n) * 0.01
    trades = prepare_trades(ts, price, np.ones(n), np.ones(n, dtype=np.int64), spec)
    x, mask = tick_windows(trades, np.array([ts[-1]]))
    assert mask[0].all()
    # Row 299 is trade 700: log(price_700 / price_999) relative to the last trade.
    assert x[0, 299, 0] == pytest.approx(np.log(price[700] / price[999]), rel=1e-5)
    assert x[0, 0, 0] == 0.0


@pytest.mark.parametrize("seed", [2, 3])
def test_batch_equals_streaming(seed: int) -> None:
    spec = TickSpec(window_us=30 * S, max_trades=40, qty_scale=1.3)
    trades = random_trades(3000, seed=seed, mean_gap_us=150_000.0)
    rng = np.random.default_rng(seed)
    t_B = np.sort(np.concatenate([rng.integers(trades[0][0] - S, trades[0][-1] + 40 * S, 300), trades[0][::97]]))
    xb, mb = tick_windows(prepare_trades(*trades, spec), t_B)
    xs, ms = stream_at(trades, t_B, spec)
    np.testing.assert_array_equal(mb, ms)
    np.testing.assert_allclose(xb, xs, rtol=0, atol=1e-6)
    assert mb.sum(axis=1).max() == 40 and (mb.sum(axis=1) == 0).any()


def test_stream_started_mid_series_agrees_after_window_plus_intensity() -> None:
    spec = TickSpec(window_us=20 * S, max_trades=30)
    trades = random_trades(2000, seed=6, mean_gap_us=100_000.0)
    ts = trades[0]
    start = 500
    late: Trades = (trades[0][start:], trades[1][start:], trades[2][start:], trades[3][start:])
    t_B = ts[(ts >= ts[start] + spec.window_us + spec.intensity_us) & (np.arange(len(ts)) % 7 == 0)]
    xb, mb = tick_windows(prepare_trades(*trades, spec), t_B)
    xs, ms = stream_at(late, t_B, spec)
    np.testing.assert_array_equal(mb, ms)
    np.testing.assert_allclose(xb, xs, rtol=0, atol=1e-6)
    early = ts[(ts > ts[start]) & (ts < ts[start] + spec.window_us)]
    xe, _ = stream_at(late, early, spec)
    assert not np.allclose(tick_windows(prepare_trades(*trades, spec), early)[0], xe, atol=1e-6)


def test_feature_ranges() -> None:
    spec = TickSpec(window_us=30 * S, max_trades=50)
    trades = random_trades(2000, seed=4)
    x, mask = tick_windows(prepare_trades(*trades, spec), trades[0][::10])
    names = TICK_FEATURE_NAMES
    v = x[mask]
    assert np.isfinite(x).all() and not x[~mask].any()
    assert set(np.unique(v[:, names.index("side")])) == {-1.0, 1.0}
    for name, lo, hi in [("age", 0, 1), ("log_interarrival", 0, 1), ("cum_signed_volume", -1, 1),
                         ("range_position", -1, 1)]:  # fmt: skip
        col = v[:, names.index(name)]
        assert col.min() >= lo - 1e-6 and col.max() <= hi + 1e-6, name


def test_fit_qty_scale_uses_only_its_range() -> None:
    ts = np.arange(10, dtype=np.int64) * S
    qty = np.array([1, 1, 1, 5, 5, 5, 100, 100, 100, 100], dtype=np.float64)
    fitted = fit_qty_scale(ts, qty, TimeRange(3 * S, 6 * S))
    assert fitted.value == 5.0 and fitted.n_trades == 3 and fitted.fitted_on == TimeRange(3 * S, 6 * S)
    with pytest.raises(FeatureInputError, match="no trade inside"):
        fit_qty_scale(ts, qty, TimeRange(100 * S, 200 * S))


def test_fit_qty_scale_is_an_expanding_median_inside_its_range() -> None:
    m = 60 * S
    ts = np.array([10 * S, 30 * S, 70 * S, 100 * S, 150 * S, 200 * S, 400 * S], dtype=np.int64)
    qty = np.array([1, 3, 2, 8, 8, 9, 50], dtype=np.float64)
    fit = TimeRange(0, 300 * S)
    fitted = fit_qty_scale(ts, qty, fit)
    # Checkpoints 1, 2, 4 min after the start, then the end; each the median of the trades before it.
    assert fitted.steps == ((m, 2.0), (2 * m, 2.5), (4 * m, 5.5), (300 * S, 5.5))
    assert fitted.value == 5.5
    spec = TickSpec(qty_scale=fitted.value, qty_scale_steps=fitted.steps)
    t = np.array([0, m - 1, m, 2 * m - 1, 2 * m, 4 * m, 300 * S - 1, 300 * S, 10**12])
    assert spec.qty_scale_at(t).tolist() == [1.0, 1.0, 2.0, 2.0, 2.5, 5.5, 5.5, 5.5, 5.5]
    # No steps: the fixed value at every time (unfitted, or an older bundle).
    assert TickSpec(qty_scale=0.5).qty_scale_at(t).tolist() == [0.5] * t.size
    with pytest.raises(ValueError, match="increasing"):
        TickSpec(qty_scale_steps=((2, 1.0), (1, 1.0)))


def test_the_ticks_block_uses_the_normaliser_of_its_query_time() -> None:
    ts = np.array([10 * S, 70 * S], dtype=np.int64)
    spec = TickSpec(window_us=100 * S, max_trades=4, qty_scale=4.0, qty_scale_steps=((60 * S, 2.0), (150 * S, 4.0)))
    trades = prepare_trades(ts, [100.0, 100.0], [2.0, 2.0], [1, 1], spec)
    size = TICK_FEATURE_NAMES.index("signed_log_size")
    x, _ = tick_windows(trades, np.array([50 * S, 80 * S, 160 * S]))
    assert x[:, 0, size] == pytest.approx([np.log1p(2.0), np.log1p(1.0), np.log1p(0.5)])
    stream = TickStream(spec)
    stream.update(int(ts[0]), 100.0, 2.0, 1)
    stream.update(int(ts[1]), 100.0, 2.0, 1)
    assert stream.features_at(80 * S)[0][0, size] == pytest.approx(np.log1p(1.0))
    assert stream.features_at(160 * S)[0][0, size] == pytest.approx(np.log1p(0.5))


def test_empty_series() -> None:
    trades = prepare_trades(np.array([], dtype=np.int64), [], [], [])
    x, mask = tick_windows(trades, np.array([5, 6]))
    assert x.shape == (2, 300, 10) and not x.any() and not mask.any()
    xs, ms = TickStream().features_at(5)
    assert xs.shape == (300, 10) and not ms.any()


def test_bad_input_is_rejected() -> None:
    ts, price, qty, side = random_trades(10, seed=5)
    with pytest.raises(FeatureInputError, match="row 4"):
        prepare_trades(ts, price, qty, np.where(np.arange(10) == 4, 0, side))
    with pytest.raises(FeatureInputError, match="non-decreasing; row 6"):
        prepare_trades(np.where(np.arange(10) == 6, ts[0] - 1, ts), price, qty, side)
    with pytest.raises(FeatureInputError, match="qty must be finite and > 0; row 2"):
        prepare_trades(ts, price, np.where(np.arange(10) == 2, -1.0, qty), side)
    stream = TickStream()
    stream.update(100, 1.0, 1.0, 1)
    with pytest.raises(FeatureInputError, match="before the previous one"):
        stream.update(99, 1.0, 1.0, 1)
    with pytest.raises(FeatureInputError, match="at or after its latest trade"):
        stream.features_at(50)
    with pytest.raises(FeatureInputError, match="side"):
        stream.update(101, 1.0, 1.0, 0)


def test_real_trades_batch_equals_streaming() -> None:
    path = REAL / "binance_spot_ETHUSDT_trades_2024-08-08T2354_2024-08-09T0005.csv.gz"
    if not path.exists():
        pytest.skip(f"real data not found at {path}")
    df = pl.read_csv(path)
    trades: Trades = (
        df["trade_time_ms"].to_numpy().astype(np.int64) * 1000,
        df["price"].to_numpy(),
        df["qty"].to_numpy(),
        np.where(df["is_buyer_maker"].to_numpy(), -1, 1),
    )
    spec = TickSpec(qty_scale=fit_qty_scale(trades[0], trades[2], TimeRange(0, int(trades[0][2000]))).value)
    t_B = np.sort(np.random.default_rng(0).integers(trades[0][0], trades[0][-1] + 400 * S, 150))
    xb, mb = tick_windows(prepare_trades(*trades, spec), t_B)
    xs, ms = stream_at(trades, t_B, spec)
    np.testing.assert_array_equal(mb, ms)
    np.testing.assert_allclose(xb, xs, rtol=0, atol=1e-6)
    assert (mb.sum(axis=1) == 300).any()


@pytest.mark.parametrize("seed", [7, 8])
def test_the_stream_block_is_the_numpy_reference_bit_for_bit(seed: int) -> None:
    """features_at runs the batch kernels on the buffer's rows: exactly _window_features on them."""
    steps = ((0, 0.8), (40 * S, 1.7))
    spec = TickSpec(window_us=30 * S, max_trades=40, qty_scale=1.3, qty_scale_steps=steps)
    ts, price, qty, side = random_trades(1500, seed=seed, mean_gap_us=150_000.0)
    stream, j, checked = TickStream(spec), 0, 0
    rng = np.random.default_rng(seed)
    for t in np.sort(np.concatenate([rng.integers(ts[0] - S, ts[-1] + 40 * S, 200), ts[::53]])):
        while j < len(ts) and ts[j] <= t:
            stream.update(int(ts[j]), float(price[j]), float(qty[j]), int(side[j]))
            j += 1
        if j == 0:
            continue
        x, mask = stream.features_at(int(t))
        xr, mr = numpy_tick_features_at(stream, int(t))
        assert np.array_equal(mask, mr) and np.array_equal(x, xr), f"differs at t={t}"
        assert x.dtype == np.float32 and x.shape == (40, 10)
        checked += int(mask.sum())
    assert checked > 0
