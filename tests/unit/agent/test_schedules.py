"""Annealing schedules: end points, shape, clamping and argument checks."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rltrade.agent.schedules import (
    alpha_schedule,
    beta_schedule,
    epsilon_schedule,
    exponential,
    linear,
)


def test_linear_end_points_midpoint_and_clamp() -> None:
    assert linear(1.0, 0.0, 100, 0) == 1.0
    assert linear(1.0, 0.0, 100, 25) == 0.75
    assert linear(1.0, 0.0, 100, 100) == 0.0
    assert linear(1.0, 0.0, 100, 10_000) == 0.0


def test_exponential_is_geometric() -> None:
    assert exponential(1.0, 0.01, 100, 0) == 1.0
    assert exponential(1.0, 0.01, 100, 50) == pytest.approx(0.1)
    assert exponential(1.0, 0.01, 100, 100) == pytest.approx(0.01)
    assert exponential(1.0, 0.01, 100, 500) == pytest.approx(0.01)
    # Constant ratio between equally spaced steps.
    ratios = [exponential(2.0, 0.5, 10, s + 1) / exponential(2.0, 0.5, 10, s) for s in range(10)]
    assert ratios == pytest.approx([0.25**0.1] * 10)


def test_prioritized_replay_defaults() -> None:
    assert beta_schedule(0, duration=1000) == pytest.approx(0.4)
    assert beta_schedule(500, duration=1000) == pytest.approx(0.7)
    assert beta_schedule(2000, duration=1000) == 1.0
    assert alpha_schedule(123, duration=1000) == pytest.approx(0.6)
    assert alpha_schedule(1000, duration=1000, end=0.2) == pytest.approx(0.2)


def test_epsilon_kinds() -> None:
    assert epsilon_schedule(0, duration=10) == 1.0
    assert epsilon_schedule(10, duration=10) == pytest.approx(0.01)
    lin = epsilon_schedule(5, duration=10)
    exp = epsilon_schedule(5, duration=10, kind="exponential")
    assert lin == pytest.approx(0.505)
    assert exp == pytest.approx(0.1)


@pytest.mark.parametrize(
    "call",
    [
        lambda: linear(1.0, 0.0, 0, 1),
        lambda: linear(1.0, 0.0, 10, -1),
        lambda: exponential(1.0, 0.0, 10, 1),
        lambda: exponential(-1.0, 1.0, 10, 1),
        lambda: beta_schedule(0, duration=10, start=1.5),
        lambda: epsilon_schedule(0, duration=10, kind="cosine"),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_are_rejected(call: Callable[[], float]) -> None:
    with pytest.raises(ValueError):
        call()
