"""The store's manifests: which Parquet files make up each dataset, and what each one holds.

Two levels, both JSON, both written once under a new versioned name and never rewritten:

- ``<root>/manifest.json``, the **root manifest**, is the only file ever replaced in place (``os.replace``
  + fsync, the commit point of every write). It holds the store's ``version`` and, per dataset, the name
  of that dataset's manifest at that version.
- ``<dataset folder>/manifest.v<N>.json``, the **dataset manifest**, lists the dataset's partitions: per
  partition the data file (``<label>.v<N>.parquet``, in the same folder), its size in bytes, rows, first
  and last time, and the gap statistics ``rltrade data info`` prints.

Readers open only files a manifest names, so files written by an import that has not committed (or was
killed) are invisible, and the store reads exactly as before that import.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

from rltrade.types import US_PER_DAY, Timeframe

LAYOUT: Final = 2
"""Store layout version: 1 was one file per day with no manifest, 2 is partitions sized to the timeframe."""
ROOT_MANIFEST: Final = "manifest.json"
LOCK_FILE: Final = ".rltrade-store.lock"
DATA_FILE: Final = re.compile(r"^(?P<label>\d{4}(?:-\d{2}){0,2})\.v(?P<version>\d+)\.parquet$")
DATASET_MANIFEST: Final = re.compile(r"^manifest\.v(?P<version>\d+)\.json$")


class Partitioning:
    """How a dataset is cut into files: by UTC day, month or year, sized to the timeframe.

    Ticks, 1s and 1m bars get a file per day (1,440 1m bars, ~86k 1s bars, ~1M ETH trades); 1h bars a file
    per month (~744 bars); 1d bars a file per year (365 bars). Eight years of 1h are ~100 files, not 3,000.
    """

    DAY: Final = "day"
    MONTH: Final = "month"
    YEAR: Final = "year"
    _FORMAT: Final = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}

    @staticmethod
    def for_timeframe(timeframe: Timeframe | None) -> str:
        """Return the partitioning of a timeframe (None: trades)."""
        if timeframe is None or timeframe.us < Timeframe.H1.us:
            return Partitioning.DAY
        return Partitioning.MONTH if timeframe.us < Timeframe.D1.us else Partitioning.YEAR

    @staticmethod
    def strftime(unit: str) -> str:
        """Return the ``strftime`` format of a partitioning's labels."""
        return Partitioning._FORMAT[unit]

    @staticmethod
    def span_us(label: str) -> tuple[int, int]:
        """``[start, end)`` of a partition label (``2024-08-08``, ``2024-08`` or ``2024``) in µs."""
        parts = [int(p) for p in label.split("-")]
        start = dt.date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)
        if len(parts) == 3:
            end = start + dt.timedelta(days=1)
        elif len(parts) == 2:
            end = dt.date(start.year + start.month // 12, start.month % 12 + 1, 1)
        else:
            end = dt.date(start.year + 1, 1, 1)
        epoch = dt.date(1970, 1, 1)
        return (start - epoch).days * US_PER_DAY, (end - epoch).days * US_PER_DAY


@dataclass(frozen=True)
class PartitionEntry:
    """One data file of a dataset, as its dataset manifest records it."""

    file: str
    """File name inside the dataset folder (``2024-08.v12.parquet``)."""
    bytes: int
    rows: int
    first_us: int
    last_us: int
    missing: int
    """Bars absent between this file's first and last bar (0 for trades)."""
    holes: int
    """Runs of missing bars (for trades: silences longer than an hour) inside the file."""
    longest_from_us: int | None = None
    """Start of the longest hole inside the file: the last time before it (bar open or trade time)."""
    longest_to_us: int | None = None
    """End of the longest hole: the first time after it."""
    filled: int = 0
    """Bars present but flagged ``is_filled``."""


@dataclass
class DatasetManifest:
    """Partitions of one dataset, keyed by label, in time order when sorted."""

    partitioning: str
    partitions: dict[str, PartitionEntry] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialise to compact JSON."""
        body = {"partitioning": self.partitioning, "partitions": {k: asdict(v) for k, v in self.partitions.items()}}
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @staticmethod
    def from_json(text: str) -> DatasetManifest:
        """Parse a dataset manifest."""
        body = json.loads(text)
        parts = {k: PartitionEntry(**v) for k, v in body["partitions"].items()}
        return DatasetManifest(body["partitioning"], parts)


@dataclass
class RootManifest:
    """The store's committed state: its version and, per dataset name, the dataset manifest's file."""

    version: int = 0
    datasets: dict[str, str] = field(default_factory=dict)
    """Dataset folder (relative to the root, ``/``-separated) → its manifest file name in that folder."""

    def to_json(self) -> str:
        """Serialise to JSON."""
        body = {"format": "rltrade-store", "layout": LAYOUT, "version": self.version, "datasets": self.datasets}
        return json.dumps(body, sort_keys=True, indent=1)

    @staticmethod
    def from_json(text: str, where: Path) -> RootManifest:
        """Parse the root manifest ``where``; a wrong format or layout raises ``ValueError``."""
        body = json.loads(text)
        if not isinstance(body, dict) or body.get("format") != "rltrade-store":
            raise ValueError(f"{where} is not an rltrade store manifest")
        if body.get("layout") != LAYOUT:
            raise ValueError(f"{where} has store layout {body.get('layout')!r}; this rltrade reads layout {LAYOUT}")
        return RootManifest(int(body["version"]), dict(body["datasets"]))


def write_new(path: Path, data: bytes) -> None:
    """Write a file that no reader knows yet (a new versioned name): write, flush, fsync; no rename needed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
