"""Splits: purge and embargo, walk-forward folds, overlap refusal."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rltrade.config import SplitConfig
from rltrade.data.splits import SplitError, TimeRange, ensure_disjoint, split_span, walk_forward
from rltrade.types import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE


def test_split_span_matches_documented_example() -> None:
    span = TimeRange(0, 10 * US_PER_DAY)
    fold = split_span(span, SplitConfig(), step_us=US_PER_MINUTE)
    assert fold.train == TimeRange(0, 6 * US_PER_DAY - US_PER_HOUR)
    assert fold.validation == TimeRange(6 * US_PER_DAY + 10 * US_PER_MINUTE, 8 * US_PER_DAY - US_PER_HOUR)
    assert fold.test == TimeRange(8 * US_PER_DAY + 10 * US_PER_MINUTE, 10 * US_PER_DAY)


def test_too_short_span_is_refused_with_advice() -> None:
    with pytest.raises(SplitError, match="purge_s / embargo_s"):
        split_span(TimeRange(0, US_PER_HOUR), SplitConfig())


@given(
    n_folds=st.integers(1, 8),
    days=st.integers(20, 400),
    expanding=st.booleans(),
    val=st.sampled_from([0.0, 0.2]),
)
def test_walk_forward_folds_never_leak(n_folds: int, days: int, expanding: bool, val: float) -> None:
    purge, embargo = US_PER_HOUR, 10 * US_PER_MINUTE
    span = TimeRange(0, days * US_PER_DAY)
    folds = walk_forward(
        span,
        n_folds,
        purge_us=purge,
        embargo_us=embargo,
        expanding=expanding,
        validation_fraction=val,
        step_us=US_PER_MINUTE,
    )
    assert len(folds) == n_folds
    for k, fold in enumerate(folds):
        for fitted in fold.fitted():
            assert not fold.test.overlaps(fitted)
            assert fold.test.start_us - fitted.end_us >= purge + embargo
            assert span.start_us <= fitted.start_us
        assert fold.test.end_us <= span.end_us
        if k:
            assert fold.test.start_us >= folds[k - 1].test.end_us
            if expanding:
                assert fold.train.start_us == folds[0].train.start_us
    assert folds[-1].test.end_us == span.end_us


def test_ensure_disjoint_refuses_overlap() -> None:
    fitted = [TimeRange(0, 100)]
    ensure_disjoint(TimeRange(100, 200), fitted, what="backtest")
    with pytest.raises(SplitError, match="overlaps the fitted range"):
        ensure_disjoint(TimeRange(99, 200), fitted, what="backtest")


def test_empty_range_is_an_error() -> None:
    with pytest.raises(SplitError, match="empty time range"):
        TimeRange(5, 5)
