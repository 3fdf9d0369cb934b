"""Annealing schedules: pure functions of the training step, with no state to save or restore.

Each schedule moves from ``start`` (at step 0) to ``end`` (at step ``duration``) and stays at ``end``
afterwards, so resuming a run only needs the step counter.

Defaults follow Schaul et al. 2016, "Prioritized Experience Replay" (proportional variant): α = 0.6
constant, β annealed linearly from 0.4 to 1 over training (full importance-sampling correction only
matters near convergence); ε-greedy from 1.0 to 0.01 as in the original DQN design.
"""

from __future__ import annotations

from typing import Literal


def _progress(duration: int, step: int) -> float:
    if duration < 1:
        raise ValueError(f"schedule duration must be ≥ 1 step, got {duration}")
    if step < 0:
        raise ValueError(f"schedule step must be ≥ 0, got {step}")
    return min(step / duration, 1.0)


def linear(start: float, end: float, duration: int, step: int) -> float:
    """``start + (end - start) · min(step / duration, 1)``."""
    return start + (end - start) * _progress(duration, step)


def exponential(start: float, end: float, duration: int, step: int) -> float:
    """Geometric interpolation ``start · (end / start)^min(step / duration, 1)``.

    Every step multiplies the value by the same factor, so it falls fast early and slowly late.
    ``start`` and ``end`` must be non-zero with the same sign (use ``linear`` to reach 0).
    """
    if start == 0.0 or end == 0.0 or (start > 0.0) != (end > 0.0):
        raise ValueError(
            f"exponential schedule needs non-zero start and end of the same sign, got {start} → {end}; "
            "use linear() to anneal to or from 0"
        )
    return start * float((end / start) ** _progress(duration, step))


def beta_schedule(step: int, *, duration: int, start: float = 0.4, end: float = 1.0) -> float:
    """Importance-sampling exponent β of prioritized replay, annealed linearly to ``end``."""
    _check_unit("beta", start, end)
    return linear(start, end, duration, step)


def alpha_schedule(step: int, *, duration: int, start: float = 0.6, end: float = 0.6) -> float:
    """Priority exponent α of prioritized replay (constant by default; set ``end`` to anneal it).

    Feed the value to ``PrioritizedReplay.set_alpha``; it re-weights stored priorities exactly.
    """
    _check_unit("alpha", start, end)
    return linear(start, end, duration, step)


def epsilon_schedule(
    step: int,
    *,
    duration: int,
    start: float = 1.0,
    end: float = 0.01,
    kind: Literal["linear", "exponential"] = "linear",
) -> float:
    """Exploration rate ε of ε-greedy action selection."""
    _check_unit("epsilon", start, end)
    if kind == "linear":
        return linear(start, end, duration, step)
    if kind == "exponential":
        return exponential(start, end, duration, step)
    raise ValueError(f"epsilon_schedule: unknown kind {kind!r}; use 'linear' or 'exponential'")


def _check_unit(name: str, start: float, end: float) -> None:
    if not (0.0 <= start <= 1.0 and 0.0 <= end <= 1.0):
        raise ValueError(f"{name} schedule: start and end must lie in [0, 1], got {start} → {end}")
