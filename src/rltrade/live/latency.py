"""Latency per stage of the live pipeline, in bounded memory: a log-bucketed histogram per stage.

A sample of ``x`` µs lands in bucket ``floor(log2(x) · BUCKETS_PER_OCTAVE)`` (samples below 1 µs in bucket
0), so a reported percentile is the upper edge of the bucket holding it: at most ``2^(1/8) − 1 ≈ 9 %``
above the true value, never below it. Memory is fixed (``N_BUCKETS`` counters per stage) however long the
session runs, and recording is O(1). The histogram covers the whole session; ``max_us`` is exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

BUCKETS_PER_OCTAVE = 8
N_BUCKETS = 40 * BUCKETS_PER_OCTAVE
"""Covers 1 µs .. 2^40 µs (about 12 days); larger samples go to the last bucket."""


class LatencyHistogram:
    """Counts of latency samples (µs) in log-spaced buckets (module docstring)."""

    def __init__(self) -> None:
        self.counts_N = np.zeros(N_BUCKETS, np.int64)
        self.n = 0
        self.max_us = 0.0

    def add(self, us: float) -> None:
        """Record one sample of ``us`` microseconds (negative samples, clock steps, count as 0)."""
        k = int(math.log2(us) * BUCKETS_PER_OCTAVE) if us > 1.0 else 0
        self.counts_N[min(k, N_BUCKETS - 1)] += 1
        self.n += 1
        if us > self.max_us:
            self.max_us = us

    def percentile(self, q: float) -> float | None:
        """Upper edge (µs) of the bucket holding the ``q``-th percentile (0 < q ≤ 100); None before any sample."""
        if self.n == 0:
            return None
        rank = max(1, math.ceil(q / 100.0 * self.n))
        k = int(np.searchsorted(np.cumsum(self.counts_N), rank))
        return min(float(2.0 ** ((k + 1) / BUCKETS_PER_OCTAVE)), self.max_us)

    def summary(self) -> dict[str, float | int | None]:
        """Return ``{n, p50_us, p99_us, max_us}`` of the samples so far."""
        return {"n": self.n, "p50_us": self.percentile(50), "p99_us": self.percentile(99), "max_us": self.max_us}


class StageLatencies:
    """One :class:`LatencyHistogram` per named stage."""

    def __init__(self, stages: Iterable[str]) -> None:
        self.stages: dict[str, LatencyHistogram] = {name: LatencyHistogram() for name in stages}

    def add(self, stage: str, us: float) -> None:
        """Record one sample of ``us`` microseconds for ``stage``."""
        self.stages[stage].add(us)

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        """``{stage: {n, p50_us, p99_us, max_us}}``."""
        return {name: h.summary() for name, h in self.stages.items()}

    def counts(self) -> dict[str, npt.NDArray[np.int64]]:
        """Return the bucket counts of every stage."""
        return {name: h.counts_N for name, h in self.stages.items()}
