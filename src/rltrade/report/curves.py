"""Line data of the report, each line cut to a point budget.

The lines are the equity, drawdown and position of the agent beside buy-and-hold, the agent's trades, and
the training curves of the run's TensorBoard logs.

Every line keeps at most its budget of points with :func:`rltrade.report.decimate.minmax_indices`, so
peaks, troughs and the final value survive. Drawdown is computed on the full curve before decimation:
``drawdown_i = equity_i / max(equity_0..equity_i) − 1`` (≤ 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from rltrade.report.decimate import largest_abs_indices, minmax_indices

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Line:
    """One drawable line.

    ``x`` is a time in µs (int64) or a training step; ``n_source`` is its length before decimation.
    """

    name: str
    x: I64
    y: F64
    n_source: int


def decimated(name: str, x: npt.ArrayLike, y: npt.ArrayLike, max_points: int) -> Line:
    """``(x, y)`` cut to at most ``max_points`` points that keep the extremes of ``y``."""
    xa, ya = np.asarray(x, dtype=np.int64), np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(f"{name}: x and y must be 1-D of one length, got {xa.shape} and {ya.shape}")
    keep = minmax_indices(ya, max_points)
    return Line(name, xa[keep], ya[keep], int(ya.size))


def drawdown(equity_T: npt.ArrayLike) -> F64:
    """``equity / running peak − 1`` at every point (0 at a new peak, negative below it)."""
    e = np.asarray(equity_T, dtype=np.float64)
    return e / np.maximum.accumulate(e) - 1.0


@dataclass(frozen=True, eq=False)
class EquityView:
    """The agent's equity, drawdown and position, with buy-and-hold's equity and drawdown when known."""

    equity: Line
    drawdown: Line
    position: Line
    hold_equity: Line | None
    hold_drawdown: Line | None
    initial_equity: float


def equity_view(
    steps: pl.DataFrame, hold_equity_T: npt.ArrayLike | None, *, max_points: int, initial_equity: float
) -> EquityView:
    """Lines of the agent's ``agent_steps`` table and buy-and-hold's equity on the same steps.

    Five lines share ``max_points`` (each gets a fifth).
    """
    budget = max_points // 5
    t = steps["time_us"].to_numpy()
    eq = steps["equity"].to_numpy()
    hold = None if hold_equity_T is None else np.asarray(hold_equity_T, dtype=np.float64)
    return EquityView(
        equity=decimated("agent", t, eq, budget),
        drawdown=decimated("agent", t, drawdown(eq), budget),
        position=decimated("position", t, steps["position"].to_numpy(), budget),
        hold_equity=None if hold is None else decimated("buy & hold", t, hold, budget),
        hold_drawdown=None if hold is None else decimated("buy & hold", t, drawdown(hold), budget),
        initial_equity=initial_equity,
    )


@dataclass(frozen=True, eq=False)
class TradeMarks:
    """Entries and exits of the agent's trades to mark (the largest |PnL| ones when over the cap)."""

    entry_us_N: I64
    entry_price_N: F64
    exit_us_N: I64
    exit_price_N: F64
    is_long_N: npt.NDArray[np.bool_]
    pnl_N: F64
    fees_N: F64
    n_total: int


def trade_marks(trades: pl.DataFrame, *, max_trades: int) -> TradeMarks:
    """Read the ``agent_trades`` table's trades, at most ``max_trades`` of them (largest |PnL| first)."""
    keep = largest_abs_indices(trades["pnl"].to_numpy(), max_trades)

    def col(name: str) -> npt.NDArray[np.generic]:
        return np.asarray(trades[name].to_numpy()[keep])

    return TradeMarks(
        entry_us_N=col("entry_us").astype(np.int64),
        entry_price_N=col("entry_price").astype(np.float64),
        exit_us_N=col("exit_us").astype(np.int64),
        exit_price_N=col("exit_price").astype(np.float64),
        is_long_N=col("side") == "long",
        pnl_N=col("pnl").astype(np.float64),
        fees_N=col("fees").astype(np.float64),
        n_total=trades.height,
    )


@dataclass(frozen=True, eq=False)
class TrainingCurves:
    """Scalar curves of a TensorBoard log folder, x = training step."""

    curves: tuple[Line, ...]
    all_zero: tuple[str, ...]
    """Tags whose every value is 0 (e.g. reward terms with weight 0): listed, not drawn."""


def read_scalars(log_dir: Path) -> dict[str, tuple[I64, F64]]:
    """Every scalar tag of the TensorBoard event files under ``log_dir`` (steps, values), sorted by step.

    When a resumed run logged a step twice, the last value written wins.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})  # 0: keep every point
    acc.Reload()
    out: dict[str, tuple[I64, F64]] = {}
    for tag in acc.Tags().get("scalars", []):
        events = acc.Scalars(tag)
        step = np.fromiter((e.step for e in events), np.int64, len(events))
        value = np.fromiter((e.value for e in events), np.float64, len(events))
        # stable sort, then the last write of each step
        order = np.argsort(step, kind="stable")
        step, value = step[order], value[order]
        last = np.concatenate([step[1:] != step[:-1], [True]]) if step.size else np.zeros(0, bool)
        out[tag] = (step[last], value[last])
    return out


def training_curves(log_dir: Path, *, max_points: int) -> TrainingCurves:
    """Read the run's training curves; the drawn tags share ``max_points`` equally."""
    scalars = read_scalars(log_dir)
    zero = tuple(tag for tag, (_, v) in scalars.items() if v.size and not np.any(v))
    drawn = [tag for tag, (_, v) in scalars.items() if v.size and tag not in zero]
    budget = max(4, max_points // max(len(drawn), 1))
    return TrainingCurves(
        curves=tuple(decimated(tag, *scalars[tag], budget) for tag in drawn),
        all_zero=zero,
    )
