"""Parquet store of trades and bars: partitions sized to the timeframe, all-or-nothing writes, one writer.

Layout (layout 2; see ``store_manifest`` for the manifests)::

    <root>/manifest.json                                     the committed state (the only file replaced)
    <root>/.rltrade-store.lock                               the writers' advisory lock
    <root>/exchange=binance/symbol=ETHUSDT/kind=bars/timeframe=1m/2024-08-08.v3.parquet   a day
    <root>/exchange=binance/symbol=ETHUSDT/kind=bars/timeframe=1h/2024-08.v7.parquet      a month
    <root>/exchange=binance/symbol=ETHUSDT/kind=bars/timeframe=1d/2024.v7.parquet         a year
    <root>/exchange=binance/symbol=ETHUSDT/kind=trades/timeframe=tick/2024-08-08.v2.parquet
    <root>/exchange=binance/symbol=ETHUSDT/kind=bars/timeframe=1m/manifest.v7.json         its partitions

Ticks, 1s and 1m bars are cut by UTC day, 1h bars by month, 1d bars by year.

Writes are **transactions**: every partition an import touches is merged with what the store holds and
written under a new versioned name (fsynced), then the dataset manifests naming the new files, and last
the root manifest is replaced with ``os.replace`` and fsynced. That replace is the commit: a conflict, an
exception, a crash or a ``kill -9`` anywhere before it leaves the committed state untouched, and readers,
which open only files the manifests name, see the store exactly as before. Files of an uncommitted write
(and superseded ones) are deleted by the next writer (:meth:`Store.recover`).

Appends are **idempotent**: rows are deduplicated by key (``open_us`` for bars, ``trade_id`` for trades);
a key stored with *different* values is a :class:`StoreConflictError` (bad input, nothing written) naming
the column and the time. Writers take an advisory lock (``filelock``); a second writer waits up to
``lock_timeout_s`` and then fails with :class:`StoreLockedError`. The lock dies with its process, so a
killed writer never blocks the next one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import filelock
import polars as pl
import pyarrow.parquet as pq

from rltrade.data.atomic import atomic_write, fsync_dir
from rltrade.data.schema import conform
from rltrade.data.store_conflicts import StoreConflictError, raise_on_conflict, unique_or_raise
from rltrade.data.store_coverage import DatasetCoverage, Hole, coverage_of, partition_entry
from rltrade.data.store_dataset import TICK, DatasetKey, iso
from rltrade.data.store_manifest import (
    DATA_FILE,
    DATASET_MANIFEST,
    LOCK_FILE,
    ROOT_MANIFEST,
    DatasetManifest,
    PartitionEntry,
    Partitioning,
    RootManifest,
    write_new,
)
from rltrade.types import US_PER_DAY

__all__ = [
    "TICK",
    "AppendResult",
    "DatasetCoverage",
    "DatasetKey",
    "Hole",
    "LegacyLayoutError",
    "Store",
    "StoreConflictError",
    "StoreCorruptError",
    "StoreError",
    "StoreLockedError",
    "Transaction",
    "iso",
]


Fault = Callable[[str], None]
"""Test hook called at each step of a write (``write <dataset>/<label>``, ``manifest <dataset>``,
``commit``, ``committed``); raising or killing the process there simulates a crash at that step."""


class StoreError(RuntimeError):
    """The store is inconsistent, damaged, locked or in an old layout: exit 3, the message says what to do."""


class StoreCorruptError(StoreError):
    """A file the store needs is missing, truncated or unreadable."""


class StoreLockedError(StoreError):
    """Another process holds the store's write lock for longer than the timeout."""


class LegacyLayoutError(StoreError):
    """The store is in layout 1 (one file per day, no manifest); ``rltrade data migrate`` converts it."""


@dataclass(frozen=True)
class AppendResult:
    """What one append did, counted."""

    rows_in: int
    rows_new: int
    rows_duplicate: int
    days_written: int
    """Partition files written (a day, a month or a year each, by the dataset's partitioning)."""

    def __add__(self, other: AppendResult) -> AppendResult:
        """Add the counts of two appends to one dataset."""
        return AppendResult(
            self.rows_in + other.rows_in,
            self.rows_new + other.rows_new,
            self.rows_duplicate + other.rows_duplicate,
            self.days_written + other.days_written,
        )


class Store:
    """A Parquet market-data store rooted at ``root`` (created on first write).

    ``lock_timeout_s``: how long a writer waits for another writer to finish. ``fault``: test hook, see
    :data:`Fault`.
    """

    def __init__(self, root: Path, *, lock_timeout_s: float = 60.0, fault: Fault | None = None) -> None:
        self.root = Path(root)
        self.lock_timeout_s = lock_timeout_s
        self._fault = fault

    # ------------------------------------------------------------------ manifests
    def _root_manifest(self, *, allow_legacy: bool = False) -> RootManifest:
        path = self.root / ROOT_MANIFEST
        try:
            text = path.read_text()
        except FileNotFoundError:
            if not allow_legacy and self.legacy_datasets():
                raise LegacyLayoutError(
                    f"the store {self.root} is in the old layout (one file per day, no manifest); this "
                    f"rltrade reads the new one. Run `rltrade data migrate --store {self.root}` once to convert "
                    "it in place (all or nothing; a backup copy first is cheap insurance)"
                ) from None
            return RootManifest()
        try:
            return RootManifest.from_json(text, path)
        except (ValueError, KeyError, TypeError) as e:
            raise StoreCorruptError(
                f"{path}: unreadable store manifest ({e}). Restore it from a backup; without it the store's "
                "files cannot be trusted, so re-create the store from the sources"
            ) from e

    def legacy_datasets(self) -> list[DatasetKey]:
        """Datasets stored in layout 1 (``.../date=YYYY-MM-DD/part.parquet``)."""
        out = []
        for folder in sorted(self.root.glob("exchange=*/symbol=*/kind=*/timeframe=*")):
            if any(folder.glob("date=*/part.parquet")):
                out.append(DatasetKey.from_relpath(folder.relative_to(self.root).as_posix()))
        return out

    def _dataset_manifest(self, root: RootManifest, key: DatasetKey) -> DatasetManifest | None:
        name = root.datasets.get(key.relpath)
        if name is None:
            return None
        path = key.folder(self.root) / name
        try:
            return DatasetManifest.from_json(path.read_text())
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise StoreCorruptError(
                f"{path}: the manifest of {key} is missing or unreadable ({e}). Restore it from a backup, "
                f"or delete the folder {key.folder(self.root)} and its entry in {self.root / ROOT_MANIFEST} "
                "and re-import that dataset"
            ) from e

    # ------------------------------------------------------------------ reading
    def datasets(self) -> list[DatasetKey]:
        """Every dataset the committed state holds."""
        return [DatasetKey.from_relpath(p) for p in sorted(self._root_manifest().datasets)]

    def partitions(self, key: DatasetKey) -> list[tuple[str, PartitionEntry]]:
        """Return the dataset's committed partitions, ``(label, entry)`` in time order."""
        manifest = self._dataset_manifest(self._root_manifest(), key)
        return sorted(manifest.partitions.items()) if manifest is not None else []

    def days(self, key: DatasetKey) -> list[dt.date]:
        """UTC days holding at least one row (from the manifest for day partitions, else from the data)."""
        parts = self.partitions(key)
        if key.partitioning == Partitioning.DAY:
            return [dt.date.fromisoformat(label) for label, _ in parts]
        days = self.read(key).select((pl.col(key.time_col) // US_PER_DAY).unique().sort()).to_series()
        return [dt.date(1970, 1, 1) + dt.timedelta(days=int(d)) for d in days]

    def _paths(self, key: DatasetKey, start_us: int | None, end_us: int | None) -> list[tuple[Path, PartitionEntry]]:
        folder = key.folder(self.root)
        out = []
        for _, e in self.partitions(key):
            if (start_us is None or e.last_us >= start_us) and (end_us is None or e.first_us < end_us):
                out.append((folder / e.file, e))
        return out

    def _check_files(self, files: list[tuple[Path, PartitionEntry]]) -> None:
        for path, entry in files:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise FileNotFoundError(path) from None
            if size != entry.bytes:
                raise self._corrupt(path, entry, f"{size:,} bytes where the manifest recorded {entry.bytes:,}")

    def _corrupt(self, path: Path, entry: PartitionEntry, why: str) -> StoreCorruptError:
        return StoreCorruptError(
            f"{path}: damaged store file ({why}); it holds {entry.rows:,} rows from {iso(entry.first_us)} to "
            f"{iso(entry.last_us)}. Run `rltrade data check --store {self.root} --drop-bad` to take it out of "
            "the store, then re-import that range"
        )

    def _read_files(self, key: DatasetKey, start_us: int | None, end_us: int | None) -> pl.DataFrame:
        files = self._paths(key, start_us, end_us)
        if not files:
            return pl.DataFrame(schema=key.schema)
        self._check_files(files)
        lazy = pl.scan_parquet([p for p, _ in files])
        col = pl.col(key.time_col)
        if start_us is not None:
            lazy = lazy.filter(col >= start_us)
        if end_us is not None:
            lazy = lazy.filter(col < end_us)
        try:
            return lazy.collect()
        except (pl.exceptions.PolarsError, OSError) as e:
            for path, entry in files:  # name the file: polars' message ("File must end with PAR1") does not
                try:
                    pq.read_metadata(path)
                except Exception as bad:  # any failure to read the footer is damage
                    raise self._corrupt(path, entry, str(bad).splitlines()[0]) from e
            raise StoreCorruptError(f"{key}: reading the store failed ({e}); run `rltrade data check`") from e

    def read(self, key: DatasetKey, start_us: int | None = None, end_us: int | None = None) -> pl.DataFrame:
        """Rows with ``start_us <= time < end_us`` (either bound optional), sorted, in the dataset's schema.

        Only the partitions overlapping the range are opened, and the row filter is pushed into the
        Parquet scan, so a range read costs what the range holds, not what the store holds. A file that
        vanished under us (a writer committed and cleaned up meanwhile) makes the read start over once.
        """
        try:
            return self._read_files(key, start_us, end_us)
        except FileNotFoundError:
            try:
                return self._read_files(key, start_us, end_us)
            except FileNotFoundError as e:
                raise StoreCorruptError(
                    f"{e}: a file the store's manifest names is missing. Run `rltrade data check --store "
                    f"{self.root} --drop-bad` to take it out of the store, then re-import that range"
                ) from None

    def _read_entry(self, path: Path, entry: PartitionEntry) -> pl.DataFrame:
        """One whole partition file; damage is a :class:`StoreCorruptError` naming it."""
        try:
            self._check_files([(path, entry)])
            return pl.read_parquet(path)
        except FileNotFoundError:
            raise self._corrupt(path, entry, "the file is missing") from None
        except (pl.exceptions.PolarsError, OSError) as e:
            raise self._corrupt(path, entry, str(e).splitlines()[0]) from e

    def iter_partitions(self, key: DatasetKey) -> Iterator[pl.DataFrame]:
        """Yield the dataset one partition at a time, in time order (bounded memory for large tick datasets)."""
        for _, entry in self.partitions(key):
            yield self.read(key, entry.first_us, entry.last_us + 1)

    def last_time(self, key: DatasetKey) -> int | None:
        """Time of the last stored row (bar open or trade time), or None for an empty dataset.

        ``rltrade data fetch`` resumes from here.
        """
        parts = self.partitions(key)
        return parts[-1][1].last_us if parts else None

    def coverage(self, key: DatasetKey) -> DatasetCoverage:
        """Rows, first/last time, missing bars, holes (within and between partitions) and filled bars.

        Read from the manifest; each file's size is checked against it, so a truncated file shows here.
        """
        parts = self.partitions(key)
        folder = key.folder(self.root)
        for _, entry in parts:
            try:
                self._check_files([(folder / entry.file, entry)])
            except FileNotFoundError:
                raise self._corrupt(folder / entry.file, entry, "the file is missing") from None
        return coverage_of(key, parts)

    def check(self) -> list[tuple[DatasetKey, str, str]]:
        """Read every committed file whole; return ``(dataset, label, problem)`` for each damaged one."""
        bad = []
        for key in self.datasets():
            folder = key.folder(self.root)
            for label, entry in self.partitions(key):
                path = folder / entry.file
                try:
                    self._check_files([(path, entry)])
                    rows = pl.read_parquet(path).height
                    if rows != entry.rows:
                        bad.append((key, label, f"{rows:,} rows where the manifest recorded {entry.rows:,}"))
                except (StoreCorruptError, FileNotFoundError, OSError, pl.exceptions.PolarsError) as e:
                    bad.append((key, label, str(e).splitlines()[0]))
        return bad

    # ------------------------------------------------------------------ writing
    def _lock(self) -> filelock.FileLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(self.root / LOCK_FILE, timeout=self.lock_timeout_s)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock = self._lock()
        try:
            lock.acquire()
        except filelock.Timeout:
            raise StoreLockedError(
                f"another rltrade process is writing to the store {self.root} (lock {lock.lock_file} held for "
                f"over {self.lock_timeout_s:.0f} s); wait for it to finish and retry. The lock is released when "
                "that process ends, so a crashed writer never leaves it behind"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def append(self, key: DatasetKey, frame: pl.DataFrame) -> AppendResult:
        """Merge ``frame`` into the store as one transaction; idempotent, all or nothing."""
        with self.transaction() as tx:
            return tx.append(key, frame)

    def drop_bad(self) -> list[tuple[DatasetKey, str, str]]:
        """Take every damaged partition (see :meth:`check`) out of the store, in one transaction."""
        with self.transaction() as tx:
            bad = self.check()
            for key, label, _ in bad:
                tx.drop(key, label)
        return bad

    @contextlib.contextmanager
    def transaction(self, *, allow_legacy: bool = False) -> Iterator[Transaction]:
        """Lock the store, clean up after crashed writers, yield a :class:`Transaction`, commit on exit.

        An exception inside the block rolls everything back: the store stays exactly as it was.
        """
        with self._locked():
            base = self._root_manifest(allow_legacy=allow_legacy)
            self._cleanup(base)
            tx = Transaction(self, base)
            try:
                yield tx
                tx.commit()
            except BaseException:
                tx.rollback()
                with contextlib.suppress(Exception):  # best effort: the next writer cleans up anyway
                    self._cleanup(tx.committed)  # the base, unless the failure came after the commit
                raise
            self._cleanup(tx.committed)

    def recover(self) -> int:
        """Delete files no committed manifest names (left by a killed writer); return how many."""
        with self._locked():
            return self._cleanup(self._root_manifest(allow_legacy=True))

    def _cleanup(self, root: RootManifest) -> int:
        removed = 0
        for tmp in self.root.glob(f".{ROOT_MANIFEST}.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
        for folder in sorted(self.root.glob("exchange=*/symbol=*/kind=*/timeframe=*")):
            relpath = folder.relative_to(self.root).as_posix()
            keep: set[str] = set()
            name = root.datasets.get(relpath)
            if name is not None:
                manifest = self._dataset_manifest(root, DatasetKey.from_relpath(relpath))
                keep = {name} | {e.file for e in manifest.partitions.values()} if manifest else {name}
            for child in folder.iterdir():
                stale = child.name.endswith(".tmp") or (
                    (DATA_FILE.match(child.name) or DATASET_MANIFEST.match(child.name)) and child.name not in keep
                )
                if child.is_file() and stale:
                    child.unlink()
                    removed += 1
                elif child.is_dir() and child.name.startswith("date=") and root.version > 0:
                    shutil.rmtree(child)  # layout-1 day folders left after a migration committed
                    removed += 1
            if name is None and not any(folder.iterdir()):
                for empty in (folder, *list(folder.parents)[:3]):
                    if any(empty.iterdir()):
                        break
                    empty.rmdir()
        return removed

    def _step(self, what: str) -> None:
        if self._fault is not None:
            self._fault(what)

    @staticmethod
    def _write_parquet(fh: BinaryIO, frame: pl.DataFrame) -> None:
        frame.write_parquet(fh, compression="zstd", statistics=True)


class Transaction:
    """Appends staged under new file names; committed by replacing the root manifest (see the module doc)."""

    def __init__(self, store: Store, base: RootManifest) -> None:
        self._store = store
        self._base = base
        self.committed = base
        self._version = base.version + 1
        self._manifests: dict[str, DatasetManifest] = {}
        self._written: list[Path] = []
        self._touched: set[str] = set()

    def _manifest(self, key: DatasetKey) -> DatasetManifest:
        if key.relpath not in self._manifests:
            current = self._store._dataset_manifest(self._base, key)
            self._manifests[key.relpath] = (
                DatasetManifest(current.partitioning, dict(current.partitions))
                if current is not None
                else DatasetManifest(key.partitioning)
            )
        return self._manifests[key.relpath]

    def append(self, key: DatasetKey, frame: pl.DataFrame) -> AppendResult:
        """Stage ``frame``'s rows: merged per partition, conflicts raise :class:`StoreConflictError`."""
        frame = conform(frame, key.schema, what=f"append to {key}")
        if frame.height == 0:
            return AppendResult(0, 0, 0, 0)
        manifest = self._manifest(key)
        # An integer per partition (cheap on millions of rows), turned into its label once per partition.
        t = pl.col(key.time_col)
        when = pl.from_epoch(t, time_unit="us")
        part_id = {
            Partitioning.DAY: t // US_PER_DAY,
            Partitioning.MONTH: when.dt.year().cast(pl.Int64) * 100 + when.dt.month().cast(pl.Int64),
            Partitioning.YEAR: when.dt.year().cast(pl.Int64) * 100,
        }[manifest.partitioning]
        total = AppendResult(0, 0, 0, 0)
        for (pid,), part in frame.with_columns(part_id.alias("_part")).group_by(["_part"], maintain_order=True):
            label = _label(manifest.partitioning, int(pid))
            total = total + self._merge(key, manifest, label, part.drop("_part"))
        return total

    def _merge(self, key: DatasetKey, manifest: DatasetManifest, label: str, part: pl.DataFrame) -> AppendResult:
        rows_in = part.height
        new = unique_or_raise(key, part)
        folder = key.folder(self._store.root)
        entry = manifest.partitions.get(label)
        if entry is None:
            merged = new.sort([key.time_col, key.key_col])
        else:
            old = self._store._read_entry(folder / entry.file, entry)
            raise_on_conflict(key, old, new)
            added = new.join(old.select(key.key_col), on=key.key_col, how="anti")
            if added.height == 0:
                return AppendResult(rows_in, 0, rows_in, 0)
            merged = pl.concat([old, added]).sort([key.time_col, key.key_col])
        n_new = merged.height - (entry.rows if entry is not None else 0)
        name = f"{label}.v{self._version}.parquet"
        path = folder / name
        folder.mkdir(parents=True, exist_ok=True)
        if entry is not None and entry.file == name:  # rewritten twice in this transaction: never committed
            path.unlink()
        with _new_file(path) as fh:
            Store._write_parquet(fh, merged)
        if entry is None or entry.file != name:
            self._written.append(path)
        manifest.partitions[label] = partition_entry(key, name, path.stat().st_size, merged)
        self._touched.add(key.relpath)
        self._store._step(f"write {key}/{label}")
        return AppendResult(rows_in, n_new, rows_in - n_new, 1)

    def drop(self, key: DatasetKey, label: str) -> None:
        """Take one partition out of the dataset (its file is deleted after the commit)."""
        self._manifest(key).partitions.pop(label, None)
        self._touched.add(key.relpath)

    def commit(self) -> None:
        """Write the touched datasets' manifests, then replace the root manifest: the commit point."""
        if not self._touched:
            return
        store, root = self._store, self._store.root
        datasets = dict(self._base.datasets)
        for relpath in sorted(self._touched):
            manifest = self._manifests[relpath]
            if not manifest.partitions:
                datasets.pop(relpath, None)
                continue
            name = f"manifest.v{self._version}.json"
            path = root / relpath / name
            write_new(path, manifest.to_json().encode())
            self._written.append(path)
            fsync_dir(path.parent)  # the data files and the manifest of this folder are durable
            datasets[relpath] = name
            store._step(f"manifest {DatasetKey.from_relpath(relpath)}")
        committed = RootManifest(self._version, datasets)
        store._step("commit")
        atomic_write(root / ROOT_MANIFEST, lambda fh: fh.write(committed.to_json().encode()))
        self.committed = committed
        self._written = []
        store._step("committed")

    def rollback(self) -> None:
        """Delete every file this transaction wrote (none of them is committed)."""
        for path in self._written:
            path.unlink(missing_ok=True)
        self._written = []


def _label(partitioning: str, part_id: int) -> str:
    """``2024-08-09`` (day number since the epoch), ``2024-08`` (year * 100 + month) or ``2024``."""
    if partitioning == Partitioning.DAY:
        return (dt.date(1970, 1, 1) + dt.timedelta(days=part_id)).isoformat()
    year, month = divmod(part_id, 100)
    return f"{year:04d}-{month:02d}" if partitioning == Partitioning.MONTH else f"{year:04d}"


@contextlib.contextmanager
def _new_file(path: Path) -> Iterator[BinaryIO]:
    """Open a new file (never an existing one), flushed and fsynced when the block ends."""
    with path.open("xb") as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
