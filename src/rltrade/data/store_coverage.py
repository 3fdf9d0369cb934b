"""Coverage of a dataset from its manifest: rows, missing bars and holes inside and between partitions.

Each partition's entry records its rows, first and last time, the bars missing between them, its holes
(runs of missing bars; for trades, silences over an hour) and the longest one; :func:`coverage_of` adds
the holes *between* partitions, so a month never imported is a hole like any other.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from rltrade.data.store_dataset import DatasetKey
from rltrade.data.store_manifest import PartitionEntry
from rltrade.types import US_PER_HOUR

TRADE_HOLE_US = US_PER_HOUR
"""A silence between two trades longer than this is a hole in a trades dataset."""


@dataclass(frozen=True)
class Hole:
    """Missing data: nothing stored strictly between ``after_us`` and ``before_us`` (bar opens / trade times)."""

    after_us: int
    before_us: int


@dataclass(frozen=True)
class DatasetCoverage:
    """Coverage of one dataset: its partitions and the holes inside and between them."""

    key: DatasetKey
    partitions: list[tuple[str, PartitionEntry]]
    missing: int
    """Bars absent between the first and the last stored bar, within and between files (0 for trades)."""
    holes: int
    """Runs of missing bars (trades: silences over an hour), within and between files and imports."""
    longest: Hole | None
    filled: int

    @property
    def rows(self) -> int:
        """The number of rows over all partitions."""
        return sum(e.rows for _, e in self.partitions)

    @property
    def first_us(self) -> int:
        """The first stored time."""
        return self.partitions[0][1].first_us

    @property
    def last_us(self) -> int:
        """The last stored time."""
        return self.partitions[-1][1].last_us


def partition_entry(key: DatasetKey, file: str, nbytes: int, frame: pl.DataFrame) -> PartitionEntry:
    """Return the manifest entry of a partition file holding ``frame`` (sorted by time)."""
    times = frame.get_column(key.time_col)
    first, last = int(times[0]), int(times[-1])
    step = key.timeframe.us if key.timeframe is not None else TRADE_HOLE_US
    diffs = times.diff().drop_nulls()
    over = diffs > step
    holes = int(over.sum())
    longest_from = longest_to = None
    if holes:
        i = int(diffs.arg_max() or 0)  # diffs[i] = times[i + 1] - times[i]
        longest_from, longest_to = int(times[i]), int(times[i + 1])
    missing = filled = 0
    if key.timeframe is not None:
        missing = (last - first) // step + 1 - frame.height
        filled = int(frame.get_column("is_filled").sum())
    return PartitionEntry(file, nbytes, frame.height, first, last, missing, holes, longest_from, longest_to, filled)


def coverage_of(key: DatasetKey, partitions: list[tuple[str, PartitionEntry]]) -> DatasetCoverage:
    """Totals over partitions, adding the holes *between* them (a month with no file is a hole)."""
    step = key.timeframe.us if key.timeframe is not None else TRADE_HOLE_US
    missing = holes = filled = 0
    longest: Hole | None = None

    def consider(a: int, b: int) -> None:
        nonlocal longest
        if longest is None or b - a > longest.before_us - longest.after_us:
            longest = Hole(a, b)

    prev: PartitionEntry | None = None
    for _, e in partitions:
        missing += e.missing
        holes += e.holes
        filled += e.filled
        if e.longest_from_us is not None and e.longest_to_us is not None:
            consider(e.longest_from_us, e.longest_to_us)
        if prev is not None and e.first_us - prev.last_us > step:
            holes += 1
            if key.timeframe is not None:
                missing += (e.first_us - prev.last_us) // step - 1
            consider(prev.last_us, e.first_us)
        prev = e
    return DatasetCoverage(key, partitions, missing, holes, longest, filled)
