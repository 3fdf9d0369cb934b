"""Compiled gather kernels: bit-for-bit equal to the numpy arithmetic they replace, written in place."""

from __future__ import annotations

import re

import numba
import numpy as np
import numpy.typing as npt
import pytest

from rltrade.config import FeaturesConfig, LayoutConfig
from rltrade.data.splits import TimeRange
from rltrade.features import gather_kernels as kernels
from rltrade.features.bar_channels import (
    N_BAR_CHANNELS,
    BarChannels,
    FeatureInputError,
    bar_windows,
    bar_windows_into,
    compute_bar_channels,
)
from rltrade.features.layout import build_layout
from rltrade.features.market_features import build_market_features, fit_feature_stats
from rltrade.features.state_batch import BatchStateBuilder
from rltrade.features.ticks import (
    N_TICK_FEATURES,
    TickSpec,
    prepare_trades,
    tick_windows,
)
from tests.support.numpy_gather import NumpyBatchStateBuilder, numpy_bar_windows, numpy_tick_windows
from tests.unit.env.market_cases import small_setup
from tests.unit.features.test_ticks import random_trades


def bits(x: npt.NDArray[np.float32]) -> npt.NDArray[np.uint32]:
    """The float32 bit patterns (array_equal on them also tells -0.0 from 0.0)."""
    return np.ascontiguousarray(x).view(np.uint32)


def random_bars(n: int, seed: int) -> BarChannels:
    rng = np.random.default_rng(seed)
    close = 3000.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-4, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.random(n) * 1e-4)
    low = np.minimum(open_, close) * (1 - rng.random(n) * 1e-4)
    volume = rng.pareto(1.5, n) * (rng.random(n) < 0.9)
    return compute_bar_channels(open_, high, low, close, volume)


@pytest.mark.parametrize(("n_bars", "window"), [(500, 48), (120, 300), (40, 7)])
def test_bar_windows_equal_the_numpy_gather_bit_for_bit(n_bars: int, window: int) -> None:
    ch = random_bars(n_bars, seed=n_bars)
    idx = np.concatenate(
        [[-1, 0, window - 2, window - 1, n_bars - 1], np.random.default_rng(1).integers(-1, n_bars, 200)]
    )
    idx = np.clip(idx, -1, n_bars - 1).astype(np.int64)
    x, mask = bar_windows(ch, idx, window)
    want, want_mask = numpy_bar_windows(ch, idx, window)
    assert np.array_equal(bits(x), bits(want))
    assert np.array_equal(mask, want_mask)


def test_bar_windows_into_writes_its_columns_of_a_state_matrix_and_nothing_else() -> None:
    ch = random_bars(300, seed=3)
    idx = np.array([-1, 10, 299], dtype=np.int64)
    out = np.full((3, 5 + 20 * N_BAR_CHANNELS + 4), 7.0, dtype=np.float32)
    mask = np.empty((3, 20), dtype=np.bool_)
    bar_windows_into(ch, idx, out, 5, mask)
    want, want_mask = numpy_bar_windows(ch, idx, 20)
    assert np.array_equal(bits(out[:, 5:-4]), bits(want.reshape(3, -1)))
    assert np.array_equal(mask, want_mask)
    assert (out[:, :5] == 7.0).all() and (out[:, -4:] == 7.0).all()


def test_the_bar_window_loop_compiles_to_vector_code() -> None:
    """The price channels are subtracted and rounded several doubles at a time (module docstring: "Indexing").

    Indexed from the state row's start (``out_BF[b, col0 + k]``), as before session 26, the loop compiled
    to scalar code, with no vector ``fsub``/``fptrunc`` on doubles in its IR. Compiled here without the
    on-disk cache, whose functions numba cannot inspect.
    """
    fresh = numba.njit(nogil=True, boundscheck=False)(kernels.bar_windows_into.py_func)
    ch = random_bars(400, seed=5)
    out, mask = np.zeros((3, 2500), np.float32), np.empty((3, 300), np.bool_)
    fresh(ch.log_ohlc_T4, ch.per_bar_T4, ch.valid_T, np.array([350, -1, 5], np.int64), out, 10, mask)
    ir = "\n".join(fresh.inspect_llvm().values())
    assert re.search(r"fsub (fast )?<\d+ x double>", ir), "the price channels' subtraction is not vectorised"
    assert re.search(r"fptrunc <\d+ x double>", ir), "the price channels' rounding to float32 is not vectorised"


def test_bar_windows_into_refuses_an_index_past_the_series() -> None:
    ch = random_bars(50, seed=4)
    out, mask = np.empty((1, 8 * N_BAR_CHANNELS), np.float32), np.empty((1, 8), np.bool_)
    with pytest.raises(FeatureInputError, match="outside"):
        bar_windows_into(ch, np.array([50], dtype=np.int64), out, 0, mask)


@pytest.mark.parametrize(
    ("max_trades", "seed", "steps"), [(300, 0, False), (64, 1, True), (129, 2, False), (5, 3, True)]
)
def test_tick_windows_equal_the_numpy_gather_bit_for_bit(max_trades: int, seed: int, steps: bool) -> None:
    ts, price, qty, side = random_trades(4_000, seed)
    # With steps the normaliser changes inside the series (the causal expanding fit), so it is per window.
    scale_steps = ((int(ts[500]), 0.3), (int(ts[2_000]), 1.9)) if steps else ()
    spec = TickSpec(max_trades=max_trades, window_us=60_000_000, qty_scale=0.7, qty_scale_steps=scale_steps)
    trades = prepare_trades(ts, price, qty, side, spec)
    rng = np.random.default_rng(seed)
    t = np.concatenate([[ts[0] - 1, ts[0], ts[-1], ts[-1] + 10**9], rng.integers(ts[0], ts[-1], 300)]).astype(np.int64)
    x, mask = tick_windows(trades, t)
    want, want_mask = numpy_tick_windows(trades, t)
    assert x.shape == (t.size, max_trades, N_TICK_FEATURES)
    assert np.array_equal(bits(x), bits(want))
    assert np.array_equal(mask, want_mask)
    assert mask.any() and (~mask).any()  # both full and partly empty windows were compared


@pytest.mark.parametrize("m", [1, 7, 8, 9, 100, 128, 129, 256, 300, 1000, 4099])
def test_pairwise_sum_is_numpys_sum(m: int) -> None:
    rng = np.random.default_rng(m)
    stack, vals = np.empty((3, 64), np.int64), np.empty(64)
    for _ in range(5):
        a = rng.standard_normal(m) * 10.0 ** rng.integers(-3, 4, m)
        a[rng.integers(0, m) :] = 0.0  # trailing zeros, as in a window that is not full
        assert kernels.pairwise_sum(a, 0, m, stack, vals) == a.sum()


@pytest.mark.parametrize("layout_name", ["demo", "full"])
def test_the_batch_builder_gathers_the_numpy_states_bit_for_bit(layout_name: str) -> None:
    """The whole state (every block and flag) equals the numpy gather's, with a stepped tick normaliser."""
    frames = small_setup().frames
    cfg = FeaturesConfig(layout=LayoutConfig(name=layout_name, returns=layout_name == "demo"))
    layout = build_layout(cfg.layout)
    start, end = frames.tick_span_us()  # type: ignore[misc]
    stats = fit_feature_stats(frames, TimeRange(start, start + (end - start) // 2))
    features = build_market_features(frames, layout, cfg, stats)
    assert features.trades is not None and features.trades.spec.qty_scale_steps
    t = np.concatenate([[start - 10**9, start, end], np.random.default_rng(0).integers(start, end, 200)])
    got = BatchStateBuilder(layout, features).gather(t)
    want = NumpyBatchStateBuilder(layout, features).gather(t)
    assert np.array_equal(bits(got), bits(want))
