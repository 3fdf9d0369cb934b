"""Per-symbol trade sequencer: worked examples of each arrival class and of both gap triggers."""

from __future__ import annotations

import math

import pytest

from rltrade.live.sequencer import Arrival, Gap, Sequencer


def _push_all(seq: Sequencer[int], ids: list[int], now_s: float = 0.0) -> tuple[list[Arrival], list[int | Gap]]:
    arrivals: list[Arrival] = []
    out: list[int | Gap] = []
    for i in ids:
        arrival, released = seq.push(i, i, now_s)
        arrivals.append(arrival)
        out += released
    return arrivals, out


def test_in_order_passes_straight_through() -> None:
    seq: Sequencer[int] = Sequencer(window=4, hold_s=1.0, next_id=10)
    arrivals, out = _push_all(seq, [10, 11, 12])
    assert out == [10, 11, 12] and set(arrivals) == {Arrival.IN_ORDER} and seq.next_id == 13


def test_swap_is_repaired_and_counted_once() -> None:
    seq: Sequencer[int] = Sequencer(window=4, hold_s=1.0, next_id=10)
    arrivals, out = _push_all(seq, [10, 12, 11, 13])
    assert out == [10, 11, 12, 13]
    assert arrivals == [Arrival.IN_ORDER, Arrival.IN_ORDER, Arrival.REORDERED, Arrival.IN_ORDER]


def test_duplicates_dropped_whether_delivered_or_held() -> None:
    seq: Sequencer[int] = Sequencer(window=4, hold_s=1.0, next_id=10)
    arrivals, out = _push_all(seq, [10, 10, 12, 12, 11])
    assert out == [10, 11, 12]
    assert arrivals.count(Arrival.DUPLICATE) == 2


def test_window_overflow_declares_gap_then_late_arrival_is_dropped() -> None:
    seq: Sequencer[int] = Sequencer(window=2, hold_s=math.inf, next_id=10)
    _, out = _push_all(seq, [10, 12, 13])
    assert out == [10] and seq.held == 2
    arrival, out = seq.push(14, 14, 0.0)  # a third held trade: more than window
    assert out == [Gap(11, 11), 12, 13, 14] and arrival is Arrival.IN_ORDER
    assert seq.push(11, 11, 0.0) == (Arrival.LATE, [])
    assert seq.push(12, 12, 0.0) == (Arrival.DUPLICATE, [])


def test_hold_time_declares_gap_via_push_or_expire() -> None:
    seq: Sequencer[int] = Sequencer(window=100, hold_s=0.5, next_id=10)
    assert seq.push(12, 12, now_s=1.0) == (Arrival.IN_ORDER, [])
    assert seq.deadline() == 1.5
    assert seq.expire(1.49) == []
    assert seq.expire(1.5) == [Gap(10, 11), 12]
    assert seq.deadline() is None
    # a later push past the deadline flushes too, before anything else happens
    seq.push(15, 15, now_s=2.0)
    assert seq.push(16, 16, now_s=2.6)[1] == [Gap(13, 14), 15, 16]


def test_start_is_the_smallest_id_of_the_first_window() -> None:
    seq: Sequencer[int] = Sequencer(window=3, hold_s=math.inf)
    _, out = _push_all(seq, [7, 5, 6])
    assert out == [] and seq.next_id is None
    _, out = _push_all(seq, [8])
    assert out == [5, 6, 7, 8]
    seq2: Sequencer[int] = Sequencer(window=3, hold_s=0.0)
    assert seq2.push(42, 42, 0.0)[1] == [42]  # hold_s=0: no waiting at all


def test_expire_inf_flushes_everything() -> None:
    seq: Sequencer[int] = Sequencer(window=10, hold_s=5.0, next_id=1)
    _push_all(seq, [3, 6, 7])
    assert seq.expire(math.inf) == [Gap(1, 2), 3, Gap(4, 5), 6, 7]
    assert seq.held == 0 and seq.next_id == 8


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="window"):
        Sequencer(window=0, hold_s=1.0)
    with pytest.raises(ValueError, match="hold_s"):
        Sequencer(window=1, hold_s=-1.0)
