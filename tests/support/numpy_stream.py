"""The numpy reads of the streaming ticks and pivot blocks that the compiled kernels replaced.

The reference :meth:`rltrade.features.ticks.TickStream.features_at` and
:meth:`rltrade.features.pivots_stream.PivotTracker.features` are tested against (bit for bit), and the
"before" of ``benchmarks/bench_state.py``'s streaming section: :func:`rltrade.features.ticks._window_features`
on the ring buffer's rows, :func:`rltrade.features.pivots_features.level_features` on the tracker's level state.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rltrade.features.pivots_features import FEATURES_PER_LEVEL, level_features
from rltrade.features.pivots_stream import PivotTracker
from rltrade.features.state_stream import StreamingStateBuilder
from rltrade.features.ticks import TickStream, _window_features


def numpy_tick_features_at(stream: TickStream, t: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """The stream's ticks block the numpy way: :func:`_window_features` on the ring buffer's rows, newest first."""
    m = stream.spec.max_trades
    n_buf = min(stream.n_seen, m)
    order = (stream.n_seen - 1 - np.arange(m)) % m
    in_time = (np.arange(m) < n_buf) & (stream._ts_M[order] > t - stream.spec.window_us)
    valid = np.arange(m) < int(in_time.sum())
    order = np.where(valid, order, 0)
    logp, qty, side, interarrival, tick_return, intensity = stream._cols_KM[:, order][:, None, :]
    x, mask = _window_features(
        np.array([t], dtype=np.int64),
        valid[None, :],
        stream._ts_M[order][None, :],
        logp,
        qty,
        side,
        interarrival,
        tick_return,
        intensity,
        stream.spec.qty_scale_at([t]),
        stream.spec,
    )
    return x[0], mask[0]


def numpy_pivot_features(
    tracker: PivotTracker, t: int | None = None, *, dtype: type[np.floating] = np.float32
) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.bool_]]:
    """The tracker's features the numpy way: :func:`level_features` on its level state at ``t``."""
    close_us = tracker.last_close_us
    q = (close_us or 0) if t is None else int(t)
    state = tracker.level_state(q)
    out = np.empty((tracker.levels, FEATURES_PER_LEVEL), dtype=dtype)
    level_features(state, tracker.tf_us, out=out)
    return out.reshape(-1), state.available


def use_numpy_reads(builder: StreamingStateBuilder) -> None:
    """Make ``builder`` read its ticks and pivot blocks the numpy way (the benchmark's "before")."""
    ticks = builder.ticks
    ticks.features_at = lambda t: numpy_tick_features_at(ticks, t)  # type: ignore[method-assign]
    if builder.pivots is not None:
        pivots = builder.pivots
        pivots.features = lambda t=None, dtype=np.float32: numpy_pivot_features(pivots, t, dtype=dtype)  # type: ignore[method-assign]
