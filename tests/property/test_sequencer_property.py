"""The live trade sequencer under hypothesis.

- Any arrival order made of shuffles within blocks of ``window + 1`` ids, with duplicates anywhere after
  the original, comes out exactly once each, in id order, with no gap, and every duplicate counted.
- Removing ids from such a stream yields exactly the remaining ids and one :class:`Gap` per maximal run of
  removed ids between the first and last remaining id.
- Whatever the arrival order and clock, output ids strictly increase and ids plus gap ranges tile
  ``[first, last]`` without overlap.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from rltrade.live.sequencer import Arrival, Gap, Sequencer

PROPS = settings(max_examples=150, deadline=None, derandomize=True, database=None)


@st.composite
def block_shuffled(draw: st.DrawFn) -> tuple[int, int, list[int], list[int]]:
    """(window, start, sorted ids, arrival order with duplicates)."""
    window = draw(st.integers(1, 8))
    start = draw(st.integers(0, 10**12))
    n = draw(st.integers(1, 80))
    ids = list(range(start, start + n))
    arrivals: list[int] = []
    for b in range(0, n, window + 1):
        arrivals += draw(st.permutations(ids[b : b + window + 1]))
    for _ in range(draw(st.integers(0, 10))):
        pos = draw(st.integers(0, len(arrivals) - 1))
        at = draw(st.integers(pos + 1, len(arrivals)))
        arrivals.insert(at, arrivals[pos])
    return window, start, ids, arrivals


def _run(seq: Sequencer[int], arrivals: list[int]) -> tuple[list[Arrival], list[int | Gap]]:
    classes: list[Arrival] = []
    out: list[int | Gap] = []
    for i in arrivals:
        arrival, released = seq.push(i, i, 0.0)
        classes.append(arrival)
        out += released
    return classes, out + seq.expire(math.inf)


@PROPS
@given(block_shuffled())
def test_permuted_and_duplicated_within_window_comes_out_once_in_order(
    case: tuple[int, int, list[int], list[int]],
) -> None:
    window, _, ids, arrivals = case
    classes, out = _run(Sequencer(window, hold_s=math.inf), arrivals)
    assert out == ids
    assert classes.count(Arrival.DUPLICATE) == len(arrivals) - len(ids)
    assert Arrival.LATE not in classes


@PROPS
@given(block_shuffled(), st.data())
def test_removed_ids_are_reported_as_exact_gaps(
    case: tuple[int, int, list[int], list[int]], data: st.DataObject
) -> None:
    window, start, ids, arrivals = case
    removed = set(data.draw(st.sets(st.sampled_from(ids), max_size=len(ids) - 1)))
    kept = [i for i in ids if i not in removed]
    _, out = _run(Sequencer(window, hold_s=math.inf, next_id=start), [i for i in arrivals if i not in removed])
    expected: list[int | Gap] = []
    prev = start - 1
    for i in kept:
        if i > prev + 1:
            expected.append(Gap(prev + 1, i - 1))
        expected.append(i)
        prev = i
    assert out == expected


@PROPS
@given(
    st.integers(1, 6),
    st.floats(0.0, 3.0),
    st.lists(st.tuples(st.integers(0, 40), st.floats(0.0, 1.0)), max_size=120),
)
def test_any_arrivals_give_increasing_ids_and_a_tiling_of_gaps(
    window: int, hold_s: float, arrivals: list[tuple[int, float]]
) -> None:
    seq: Sequencer[int] = Sequencer(window, hold_s)
    now = 0.0
    out: list[int | Gap] = []
    for trade_id, dt in arrivals:
        now += dt
        out += seq.push(trade_id, trade_id, now)[1]
        assert seq.held <= window
    out += seq.expire(math.inf)
    covered: list[int] = []
    for item in out:
        covered += list(range(item.first, item.last + 1)) if isinstance(item, Gap) else [item]
    delivered = [i for i in out if isinstance(i, int)]
    assert set(delivered) <= {a for a, _ in arrivals}
    if arrivals:
        assert delivered, "something must come out"
        assert covered == list(range(covered[0], covered[0] + len(covered)))  # contiguous, no overlap
        assert delivered[-1] == max(a for a, _ in arrivals)  # nothing is held back after expire(inf)
