"""Converting a layout-1 store (one ``date=YYYY-MM-DD/part.parquet`` per day, no manifest) to layout 2.

``rltrade data migrate`` runs :func:`migrate`: every old day file is read and appended to the new layout in
one transaction, grouped by the new partition (a month of days becomes one 1h file), so the conversion is
all or nothing like any import. The old ``date=`` folders are deleted after the commit; a migration that
is killed leaves the old layout as it was, and running it again starts over.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import polars as pl

from rltrade.data.store import DatasetKey, Store, StoreCorruptError
from rltrade.data.store_manifest import Partitioning


def _read_day(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as e:
        raise StoreCorruptError(
            f"{path}: damaged old-layout file ({str(e).splitlines()[0]}); nothing was migrated. Move that "
            "day's folder out of the store (and re-import the day later), then run the migration again"
        ) from e


def migrate(store: Store) -> dict[DatasetKey, int]:
    """Convert ``store`` from layout 1 in place; returns the rows migrated per dataset (empty: nothing to do)."""
    done: dict[DatasetKey, int] = {}
    with store.transaction(allow_legacy=True) as tx:
        for key in store.legacy_datasets():
            cut = Partitioning.strftime(key.partitioning)
            groups: dict[str, list[Path]] = defaultdict(list)
            for day_dir in sorted(key.folder(store.root).glob("date=*")):
                day = day_dir.name.split("=", 1)[1]
                label = {"%Y-%m-%d": day, "%Y-%m": day[:7], "%Y": day[:4]}[cut]
                groups[label].extend(sorted(day_dir.glob("part.parquet")))
            rows = 0
            for _, files in sorted(groups.items()):
                rows += tx.append(key, pl.concat([_read_day(p) for p in files])).rows_in
            done[key] = rows
    return done
