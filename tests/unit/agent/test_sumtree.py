"""SumTree against a naive oracle (a Python list with running sums), in the spirit of tianshou's
``test_segtree``. Priorities are small integers, so every sum is exact in float64 and the tree must
agree with the oracle bit for bit, boundaries included."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rltrade.agent.sumtree import SumTree


class NaiveSumTree:
    """Oracle: a list of priorities, updated one index at a time, searched by a linear scan."""

    def __init__(self, capacity: int) -> None:
        self.values = [0.0] * capacity
        self.written: set[int] = set()

    def update(self, idx: list[int], prio: list[float]) -> None:
        for i, p in zip(idx, prio, strict=True):
            self.values[i] = p
            self.written.add(i)

    def total(self) -> float:
        return math.fsum(self.values)

    def min(self) -> float:
        return min((self.values[i] for i in self.written), default=math.inf)

    def find(self, v: float) -> int:
        running = 0.0
        for i, p in enumerate(self.values):
            running += p
            if v < running:
                return i
        raise AssertionError("value beyond the total")


update_batches = st.integers(1, 40).flatmap(
    lambda cap: st.tuples(
        st.just(cap),
        st.lists(
            st.lists(st.tuples(st.integers(0, cap - 1), st.integers(0, 50)), min_size=0, max_size=12),
            min_size=1,
            max_size=8,
        ),
    )
)


@settings(max_examples=150, deadline=None)
@given(case=update_batches, draws=st.lists(st.integers(0, 10**6), min_size=1, max_size=30))
def test_matches_naive_oracle(case: tuple[int, list[list[tuple[int, int]]]], draws: list[int]) -> None:
    capacity, batches = case
    tree, oracle = SumTree(capacity), NaiveSumTree(capacity)
    for batch in batches:
        idx = [i for i, _ in batch]
        prio = [float(p) for _, p in batch]
        tree.update(np.array(idx, dtype=np.int64), np.array(prio))
        oracle.update(idx, prio)
        assert tree.total() == oracle.total()
        assert tree.min() == oracle.min()
    np.testing.assert_array_equal(tree.get(np.arange(capacity)), oracle.values)
    total = oracle.total()
    if total > 0:
        # Half-integers in [0, total): hits every leaf boundary exactly, where off-by-one bugs live.
        values = np.array([(d % int(2 * total)) / 2 for d in draws])
        got = tree.find_prefix_sum(values)
        np.testing.assert_array_equal(got, [oracle.find(v) for v in values])
        assert all(oracle.values[i] > 0 for i in got)  # a zero-priority leaf is never found


def test_duplicate_indices_last_write_wins() -> None:
    tree = SumTree(5)
    tree.update(np.array([1, 3, 1, 1, 3]), np.array([10.0, 20.0, 30.0, 40.0, 2.0]))
    np.testing.assert_array_equal(tree.get(np.arange(5)), [0.0, 40.0, 0.0, 2.0, 0.0])
    assert tree.total() == 42.0
    assert tree.min() == 2.0


def test_find_prefix_sum_with_real_valued_priorities() -> None:
    rng = np.random.default_rng(3)
    tree = SumTree(1000)
    prio = rng.exponential(size=1000)
    tree.update(np.arange(1000), prio)
    cum = np.cumsum(prio)
    values = rng.uniform(0.0, tree.total(), size=5000)
    got = tree.find_prefix_sum(values)
    expected = np.searchsorted(cum, values, side="right")
    # Sums taken in another order may differ in the last bits; only values that close to a
    # boundary may be located differently.
    differs = got != expected
    assert np.all(np.abs(values[differs][:, None] - cum[None, :]).min(axis=1) < 1e-9)
    assert differs.mean() < 1e-3


def test_rebuild_equals_incremental_updates_bit_for_bit() -> None:
    rng = np.random.default_rng(5)
    incremental = SumTree(37)
    for _ in range(20):
        incremental.update(rng.integers(0, 30, size=7), rng.random(7))
    leaves = incremental.get(np.arange(30))
    rebuilt = SumTree(37)
    rebuilt.rebuild(leaves)
    assert rebuilt.total() == incremental.total()
    assert rebuilt.min() == incremental.min()
    values = rng.uniform(0.0, rebuilt.total(), size=1000)
    np.testing.assert_array_equal(rebuilt.find_prefix_sum(values), incremental.find_prefix_sum(values))


def test_capacity_one_and_scalar_priority() -> None:
    tree = SumTree(1)
    tree.update(np.array([0]), 3.0)
    assert tree.total() == 3.0
    np.testing.assert_array_equal(tree.find_prefix_sum([0.0, 2.99]), [0, 0])


def test_unwritten_tree_has_no_minimum() -> None:
    tree = SumTree(4)
    assert tree.min() == math.inf
    assert tree.total() == 0.0


@pytest.mark.parametrize(
    ("idx", "prio", "error"),
    [
        ([4], [1.0], IndexError),
        ([-1], [1.0], IndexError),
        ([0], [-1.0], ValueError),
        ([0], [float("nan")], ValueError),
        ([0.5], [1.0], TypeError),
    ],
)
def test_update_rejects_bad_input(idx: list[float], prio: list[float], error: type[Exception]) -> None:
    with pytest.raises(error):
        SumTree(4).update(np.array(idx), np.array(prio))


def test_find_prefix_sum_rejects_values_outside_the_total() -> None:
    tree = SumTree(4)
    tree.update(np.arange(4), np.ones(4))
    with pytest.raises(ValueError, match="total"):
        tree.find_prefix_sum([4.0])
    with pytest.raises(ValueError, match="total"):
        tree.find_prefix_sum([-0.1])
