"""Min-max decimation of report lines: any series, any cap, the cap holds and the extremes survive."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rltrade.report.decimate import minmax_indices

finite = st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(y=arrays(np.float64, st.integers(1, 3_000), elements=finite), cap=st.integers(4, 600))
def test_cap_order_endpoints_and_extremes(y: np.ndarray, cap: int) -> None:
    keep = minmax_indices(y, cap)
    assert keep.size <= cap
    assert np.all(np.diff(keep) > 0)
    assert keep[0] == 0 and keep[-1] == y.size - 1
    assert y[keep].min() == y.min() and y[keep].max() == y.max()
    if y.size <= cap:
        assert keep.size == y.size
