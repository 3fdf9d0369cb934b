"""Williams pivots under hypothesis: batch == naive oracle, confirmation exactly when the last deciding bar
closes, causality of the features, streaming == batch on every bar.

Prices are integer-valued random walks with narrow bars, so equal highs/lows (ties), flat runs, inside and
outside bars are common; bars are sometimes missing (gaps in open time).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from rltrade.features.pivots import Pivot, PivotSet, PivotTracker, compute_pivots, pivot_features
from rltrade.features.pivots_reference import reference_pivot_features, reference_pivots

TF = 60_000_000
PROPS = settings(max_examples=60, deadline=None, derandomize=True, database=None)


class Bars(NamedTuple):
    high: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]
    close: npt.NDArray[np.float64]
    opens: npt.NDArray[np.int64]
    n: int

    def close_us(self) -> npt.NDArray[np.int64]:
        return self.opens + TF


@st.composite
def integer_bars(draw: st.DrawFn, max_len: int = 250) -> Bars:
    t = draw(st.integers(0, max_len))
    n = draw(st.integers(1, 3))
    steps = draw(st.lists(st.integers(-2, 2), min_size=t, max_size=t))
    up = draw(st.lists(st.integers(0, 1), min_size=t, max_size=t))
    down = draw(st.lists(st.integers(0, 1), min_size=t, max_size=t))
    gaps = draw(st.lists(st.sampled_from([1, 1, 1, 1, 2, 5]), min_size=t, max_size=t))
    mid = 1000.0 + np.cumsum(np.asarray(steps, dtype=np.float64))
    high, low = mid + np.asarray(up, np.float64), mid - np.asarray(down, np.float64)
    close = np.where(np.arange(t) % 3 == 0, high, np.where(np.arange(t) % 3 == 1, low, mid))
    opens = np.cumsum(np.asarray(gaps, np.int64)) * TF
    return Bars(high, low, close, opens, n)


@st.composite
def long_bars(draw: st.DrawFn, max_len: int = 4000) -> Bars:
    """Seeded integer walks long enough (500 to ``max_len`` bars) to reach levels 3 and 4 with n = 1."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t = draw(st.integers(500, max_len))
    step, width = draw(st.sampled_from([(2, 1), (5, 3)]))  # coarse: many ties; finer: deeper levels
    mid = 2000.0 + np.cumsum(rng.integers(-step, step + 1, t)).astype(np.float64)
    high, low = mid + rng.integers(0, width + 1, t), mid - rng.integers(0, width + 1, t)
    close = np.clip(mid + rng.integers(-1, 2, t), low, high)
    opens = np.cumsum(rng.choice([1, 1, 1, 1, 2, 5], t)).astype(np.int64) * TF
    return Bars(high, low, close, opens, draw(st.sampled_from([1, 1, 2])))


any_bars = st.one_of(integer_bars(), long_bars())


def pivots_of(b: Bars, levels: int = 5) -> PivotSet:
    return compute_pivots(b.high, b.low, b.opens, TF, n=b.n, levels=levels)


def cut(b: Bars, m: int) -> Bars:
    return Bars(b.high[:m], b.low[:m], b.close[:m], b.opens[:m], b.n)


@PROPS
@given(b=any_bars, levels=st.integers(1, 5))
def test_batch_equals_reference(b: Bars, levels: int) -> None:
    ours = pivots_of(b, levels)
    ref = reference_pivots(b.high, b.low, b.opens, TF, n=b.n, levels=levels)
    assert ours.records() == ref.records()
    for k in range(levels):
        np.testing.assert_array_equal(ours.provisional_high[k], ref.provisional_high[k])
        np.testing.assert_array_equal(ours.provisional_low[k], ref.provisional_low[k])


@settings(PROPS, max_examples=40)
@given(b=integer_bars(max_len=160))
def test_confirmation_is_the_close_of_the_last_deciding_bar(b: Bars) -> None:
    """A pivot's deciding bars are the shortest prefix of the series from which it is found; it must be
    confirmed exactly when the last of them closes (not earlier: look-ahead; not later: needless lag), and
    no later bar may remove or change it."""
    full = pivots_of(b).records()
    close_us = b.close_us()
    first_seen: dict[Pivot, int] = {}
    for m in range(len(b.high) + 1):
        prefix = pivots_of(cut(b, m)).records()
        for p in prefix:
            first_seen.setdefault(p, m)
        # stable: everything found from m bars is in the full answer
        assert set(prefix) <= set(full)
        expected = [p for p in full if m > 0 and p.confirm_us <= close_us[m - 1]]
        assert prefix == expected
    for p in full:
        last_deciding_bar = first_seen[p] - 1
        assert p.confirm_us == close_us[last_deciding_bar]
        assert last_deciding_bar >= p.bar_index + b.n


@PROPS
@given(b=any_bars, seed=st.integers(0, 2**32 - 1), where=st.floats(0.0, 1.0), offset=st.integers(-TF, TF))
def test_features_are_causal(b: Bars, seed: int, where: float, offset: int) -> None:
    """Replacing every bar that closes after t (random new prices, many ties) changes nothing at times <= t."""
    if len(b.high) == 0:
        return
    t = int(b.opens[int(where * (len(b.high) - 1))] + TF + offset)
    late = b.close_us() > t
    rng = np.random.default_rng(seed)
    high, low, close = b.high.copy(), b.low.copy(), b.close.copy()
    high[late] = 1000.0 + rng.integers(-30, 30, late.sum())
    low[late] = high[late] - rng.integers(0, 3, late.sum())
    close[late] = low[late]
    changed = Bars(high, low, close, b.opens, b.n)
    query = np.concatenate([[t], b.close_us()[~late], b.opens[~late] + TF // 3]).astype(np.int64)
    query = query[query <= t]
    base = pivot_features(pivots_of(b), b.close, b.opens, query, dtype=np.float64)
    alt = pivot_features(pivots_of(changed), changed.close, changed.opens, query, dtype=np.float64)
    np.testing.assert_array_equal(base[0], alt[0])
    np.testing.assert_array_equal(base[1], alt[1])


@PROPS
@given(b=integer_bars(max_len=120), data=st.data())
def test_batch_features_equal_reference(b: Bars, data: st.DataObject) -> None:
    span = int(b.opens[-1]) + 3 * TF if len(b.opens) else 3 * TF
    query = np.asarray(data.draw(st.lists(st.integers(-TF, span), max_size=40)), dtype=np.int64)
    feats, mask = pivot_features(pivots_of(b), b.close, b.opens, query, dtype=np.float64)
    ref, ref_mask = reference_pivot_features(b.high, b.low, b.close, b.opens, TF, query, n=b.n, levels=5)
    np.testing.assert_array_equal(mask, ref_mask)
    np.testing.assert_allclose(feats, ref, rtol=0, atol=1e-12)
    assert np.isfinite(feats).all()


@settings(PROPS, max_examples=25)
@given(b=st.one_of(integer_bars(max_len=200), long_bars(max_len=2500)))
def test_streaming_equals_batch_on_every_bar(b: Bars) -> None:
    ps = pivots_of(b)
    close_us = b.close_us()
    at_close = pivot_features(ps, b.close, b.opens, close_us)
    by_confirm: dict[int, list[Pivot]] = {}
    for p in ps.records():
        by_confirm.setdefault(p.confirm_us, []).append(p)
    tracker = PivotTracker(TF, n=b.n, levels=5)
    streamed = []
    for i in range(len(b.high)):
        new = tracker.update(int(b.opens[i]), b.high[i], b.low[i], b.close[i])
        # new pivots are exactly those confirmed at this close, so all so far are those confirmed by it
        assert sorted(new, key=_key) == by_confirm.pop(int(close_us[i]), [])
        streamed.append(tracker.features())
    assert not by_confirm
    if streamed:
        feats, mask = (np.stack(col) for col in zip(*streamed, strict=True))
        np.testing.assert_array_equal(mask, at_close[1])
        np.testing.assert_allclose(feats, at_close[0], rtol=0, atol=1e-9)


def _key(p: Pivot) -> tuple[int, int, str, int]:
    return (p.confirm_us, p.level, p.kind.value, p.bar_index)
