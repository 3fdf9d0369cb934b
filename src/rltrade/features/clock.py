"""The decision clock and the state source the replay gathers through.

A period is run on a regular clock: step ``i`` is the time ``start_us + i · step_us`` (1 s by default,
1 m for data without trades). The agent acts on the state at that time; its action fills after it
(the env's job). The replay stores step indices; :class:`ClockStateSource` turns them back into
states with the batch builder, so a transition costs bytes, not a 62 KB state vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rltrade.data.splits import TimeRange
from rltrade.features.state_batch import BatchStateBuilder
from rltrade.types import ceil_to_grid


@dataclass(frozen=True)
class DecisionClock:
    """Steps ``0..n_steps-1`` at ``start_us + i · step_us``, all inside one period."""

    start_us: int
    step_us: int
    n_steps: int

    @classmethod
    def over(cls, period: TimeRange, step_us: int) -> DecisionClock:
        """Every step inside ``period``, the first on the step grid at or after its start."""
        start = ceil_to_grid(period.start_us, step_us)
        n = (period.end_us - 1 - start) // step_us + 1
        if n <= 0:
            raise ValueError(f"period {period} holds no step of {step_us} µs")
        return cls(start, step_us, int(n))

    def time_of(self, t_idx: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Return the time (µs) of each clock step index; IndexError outside ``[0, n_steps)``."""
        idx = np.asarray(t_idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_steps):
            raise IndexError(f"step index out of range [0, {self.n_steps}): {idx.min()}..{idx.max()}")
        return self.start_us + idx * self.step_us

    @property
    def end_us(self) -> int:
        """The exclusive end of the clock: the time one step after the last."""
        return self.start_us + self.n_steps * self.step_us


class ClockStateSource:
    """``gather(t_idx_B) -> float32 [B, F]``: market states at clock steps (the replay's ``StateSource``)."""

    def __init__(self, builder: BatchStateBuilder, clock: DecisionClock) -> None:
        self.builder = builder
        self.clock = clock

    @property
    def num_features(self) -> int:
        """The width F of a state row."""
        return self.builder.size

    def gather(self, t_idx_B: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Gather the market states ``float32 [B, F]`` at clock steps ``t_idx_B`` (each sees data up to its time)."""
        return self.builder.gather(self.clock.time_of(t_idx_B))
