"""Parquet store of trades and bars, partitioned by exchange / symbol / kind / timeframe / day.

Layout (one Parquet file per UTC day)::

    <root>/exchange=binance/symbol=ETHUSDT/kind=bars/timeframe=1m/date=2024-08-08/part.parquet
    <root>/exchange=binance/symbol=ETHUSDT/kind=trades/timeframe=tick/date=2024-08-08/part.parquet

Appends are **idempotent**: rows are merged with what the day already holds and deduplicated by key
(``open_us`` for bars, ``trade_id`` for trades); a row whose key exists with *different* values is a
conflict and raises, never silently overwritten. Appends are **atomic** per day file: the merged day
is written to a temporary file in the same folder, fsynced, then ``os.replace``-d over the old one, so a
crash leaves either the old or the new day, never a torn file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from rltrade.data.atomic import atomic_write
from rltrade.data.schema import BAR_KEY, BAR_SCHEMA, TRADE_KEY, TRADE_SCHEMA, conform
from rltrade.types import US_PER_DAY, Kind, Timeframe

TICK = "tick"
"""Timeframe folder name used for trades."""


class StoreError(RuntimeError):
    """The store holds something inconsistent, or an append conflicts with stored rows."""


@dataclass(frozen=True)
class DatasetKey:
    """One logical dataset of the store."""

    exchange: str
    symbol: str
    kind: Kind
    timeframe: Timeframe | None = None
    """Bar timeframe; None for trades."""

    def __post_init__(self) -> None:
        """Check that bars have a timeframe and trades have none."""
        if (self.kind is Kind.BARS) != (self.timeframe is not None):
            raise ValueError("bars need a timeframe and trades must not have one")

    @property
    def time_col(self) -> str:
        """The name of the time column (``open_us`` for bars, ``ts_us`` for trades)."""
        return "open_us" if self.kind is Kind.BARS else "ts_us"

    @property
    def key_col(self) -> str:
        """The name of the column that identifies a row (deduplication key)."""
        return BAR_KEY if self.kind is Kind.BARS else TRADE_KEY

    @property
    def schema(self) -> dict[str, pl.DataType]:
        """The polars schema of the dataset's rows."""
        return BAR_SCHEMA if self.kind is Kind.BARS else TRADE_SCHEMA

    def folder(self, root: Path) -> Path:
        """Return the dataset's folder under ``root`` (hive-style partitions)."""
        tf = self.timeframe.value if self.timeframe is not None else TICK
        return (
            root / f"exchange={self.exchange}" / f"symbol={self.symbol}" / f"kind={self.kind.value}" / f"timeframe={tf}"
        )

    def __str__(self) -> str:
        """Return ``exchange/symbol/kind/timeframe``."""
        tf = self.timeframe.value if self.timeframe is not None else TICK
        return f"{self.exchange}/{self.symbol}/{self.kind.value}/{tf}"


@dataclass(frozen=True)
class AppendResult:
    """What one append did, counted."""

    rows_in: int
    rows_new: int
    rows_duplicate: int
    days_written: int


@dataclass(frozen=True)
class DayCoverage:
    """Coverage of one stored day: rows, first/last time, and missing bars (gaps) for bar datasets."""

    day: dt.date
    rows: int
    first_us: int
    last_us: int
    expected: int | None
    """Bars a complete day has (None for trades)."""
    missing: int | None
    """Bars absent between the day's first and last bar: gaps (None for trades)."""
    filled: int | None
    """Bars present but flagged ``is_filled`` (no trade in them)."""


def _day_of(us: int) -> dt.date:
    return dt.datetime.fromtimestamp(us // 1_000_000, tz=dt.UTC).date()


class Store:
    """A Parquet market-data store rooted at ``root`` (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ writing
    def append(self, key: DatasetKey, frame: pl.DataFrame) -> AppendResult:
        """Merge ``frame`` into the store; idempotent, atomic per day, conflicts raise ``StoreError``."""
        frame = conform(frame, key.schema, what=f"append to {key}")
        rows_in = frame.height
        if rows_in == 0:
            return AppendResult(0, 0, 0, 0)
        frame = frame.with_columns((pl.col(key.time_col) // US_PER_DAY).alias("_day"))
        new_total = dup_total = days = 0
        for (day_idx,), part in frame.group_by(["_day"], maintain_order=True):
            day = dt.date(1970, 1, 1) + dt.timedelta(days=int(day_idx))
            part = part.drop("_day")
            new, dup = self._merge_day(key, day, part)
            new_total += new
            dup_total += dup
            days += 1 if new else 0
        return AppendResult(rows_in, new_total, dup_total, days)

    def _merge_day(self, key: DatasetKey, day: dt.date, part: pl.DataFrame) -> tuple[int, int]:
        path = self._day_path(key, day)
        # Duplicates inside the incoming frame itself: identical rows collapse, conflicting ones raise.
        old = pl.read_parquet(path) if path.exists() else pl.DataFrame(schema=key.schema)
        both = pl.concat([old, part], how="vertical")
        unique_rows = both.unique(maintain_order=True)
        n_keys = unique_rows.get_column(key.key_col).n_unique()
        if n_keys != unique_rows.height:
            counts = unique_rows.group_by(key.key_col).len().filter(pl.col("len") > 1)
            example = counts.get_column(key.key_col).head(3).to_list()
            raise StoreError(
                f"{key} {day}: {counts.height} key(s) already stored with different values "
                f"(e.g. {key.key_col}={example}); the new data disagrees with the store. "
                "Re-import from the source or delete that day's folder if the stored data is wrong."
            )
        added = unique_rows.height - old.height
        duplicates = part.height - added
        if added == 0:
            return 0, duplicates
        merged = unique_rows.sort([key.time_col, key.key_col])
        self._atomic_write(path, merged)
        return added, duplicates

    def _day_path(self, key: DatasetKey, day: dt.date) -> Path:
        return key.folder(self.root) / f"date={day.isoformat()}" / "part.parquet"

    @staticmethod
    def _atomic_write(path: Path, frame: pl.DataFrame) -> None:
        atomic_write(path, lambda fh: frame.write_parquet(fh, compression="zstd", statistics=True))

    # ------------------------------------------------------------------ reading
    def datasets(self) -> list[DatasetKey]:
        """Every dataset present in the store."""
        out: list[DatasetKey] = []
        for folder in sorted(self.root.glob("exchange=*/symbol=*/kind=*/timeframe=*")):
            parts = dict(p.split("=", 1) for p in folder.relative_to(self.root).parts)
            kind = Kind(parts["kind"])
            tf = None if parts["timeframe"] == TICK else Timeframe.parse(parts["timeframe"])
            out.append(DatasetKey(parts["exchange"], parts["symbol"], kind, tf))
        return out

    def days(self, key: DatasetKey) -> list[dt.date]:
        """Return the dates that have a partition for ``key``, in order."""
        folder = key.folder(self.root)
        return sorted(dt.date.fromisoformat(p.name.split("=", 1)[1]) for p in folder.glob("date=*"))

    def _files(self, key: DatasetKey, start_us: int | None, end_us: int | None) -> Iterator[Path]:
        first = _day_of(start_us) if start_us is not None else None
        last = _day_of(end_us - 1) if end_us is not None else None
        for day in self.days(key):
            if (first is None or day >= first) and (last is None or day <= last):
                yield self._day_path(key, day)

    def read(self, key: DatasetKey, start_us: int | None = None, end_us: int | None = None) -> pl.DataFrame:
        """Rows with ``start_us <= time < end_us`` (either bound optional), sorted, in the dataset's schema.

        Only the day files overlapping the range are opened, and the row filter is pushed into the
        Parquet scan, so a range read costs what the range holds, not what the store holds.
        """
        files = list(self._files(key, start_us, end_us))
        if not files:
            return pl.DataFrame(schema=key.schema)
        lazy = pl.scan_parquet(files)
        col = pl.col(key.time_col)
        if start_us is not None:
            lazy = lazy.filter(col >= start_us)
        if end_us is not None:
            lazy = lazy.filter(col < end_us)
        return lazy.collect()

    def last_time(self, key: DatasetKey) -> int | None:
        """Time of the last stored row (bar open or trade time), or None for an empty dataset.

        ``rltrade data fetch`` resumes from here.
        """
        days = self.days(key)
        if not days:
            return None
        last = pl.read_parquet(self._day_path(key, days[-1]), columns=[key.time_col])
        return int(last.get_column(key.time_col).max())  # type: ignore[arg-type]

    def coverage(self, key: DatasetKey) -> list[DayCoverage]:
        """Per-day rows, first/last time and, for bars, missing and filled bar counts."""
        out: list[DayCoverage] = []
        for day in self.days(key):
            frame = pl.read_parquet(self._day_path(key, day))
            times = frame.get_column(key.time_col)
            first, last = int(times.min()), int(times.max())  # type: ignore[arg-type]
            expected = missing = filled = None
            if key.timeframe is not None:
                expected = max(1, US_PER_DAY // key.timeframe.us)
                # Gaps are bars absent *between* the day's first and last bar; a day at the edge of the
                # data shows up as rows < expected with no gap.
                missing = (last - first) // key.timeframe.us + 1 - frame.height
                filled = int(frame.get_column("is_filled").sum())
            out.append(DayCoverage(day, frame.height, first, last, expected, missing, filled))
        return out
