"""Merging new rows into stored ones by key: exact repeats are duplicates, different values are a conflict.

A conflict is bad input (:class:`StoreConflictError`, exit 2): the message names the dataset, the key, the
time in ISO form and the first column that differs, with the stored and the new value.
"""

from __future__ import annotations

import polars as pl

from rltrade.data.store_dataset import DatasetKey, iso


class StoreConflictError(ValueError):
    """New data disagrees with what the store (or the same import) holds for a key: bad input, exit 2."""


def _value_cols(key: DatasetKey) -> list[str]:
    return [c for c in key.schema if c != key.key_col]


def _describe(key: DatasetKey, row: dict[str, object], col: str, a: object, b: object, where: str) -> str:
    t = row[key.time_col]
    at = f"{key.time_col} {iso(t)}" if isinstance(t, int) else "?"
    ident = "" if key.key_col == key.time_col else f"{key.key_col} {row[key.key_col]}, "
    return f"{key}: {ident}{at}: column {col!r} is {a!r} {where} and {b!r} in the new data"


def unique_or_raise(key: DatasetKey, part: pl.DataFrame) -> pl.DataFrame:
    """Return ``part`` without exact repeats; a key repeated with different values raises."""
    if part.get_column(key.key_col).n_unique() == part.height:  # the usual case: no repeated key at all
        return part
    new = part.unique(maintain_order=True)
    if new.get_column(key.key_col).n_unique() == new.height:
        return new
    dup = new.filter(pl.col(key.key_col).is_duplicated()).sort(key.key_col, maintain_order=True)
    a, b = dup.head(2).iter_rows(named=True)
    col = next((c for c in _value_cols(key) if a[c] != b[c]), key.key_col)
    n = dup.get_column(key.key_col).n_unique()
    raise StoreConflictError(
        _describe(key, a, col, a[col], b[col], "in one row")
        + f"; {n:,} key(s) appear twice with different values in the data being imported. Nothing was written. "
        "Fix the source so each key appears once"
    )


def raise_on_conflict(key: DatasetKey, old: pl.DataFrame, new: pl.DataFrame) -> None:
    """Raise :class:`StoreConflictError` when a key of ``new`` is stored in ``old`` with other values."""
    cols = _value_cols(key)
    both = new.join(old, on=key.key_col, how="inner", suffix="_stored")
    if both.height == 0:
        return
    differs = pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}_stored")) for c in cols])
    bad = both.filter(differs).sort(key.key_col)
    if bad.height == 0:
        return
    row = bad.row(0, named=True)
    col = next(c for c in cols if row[c] != row[f"{c}_stored"])
    stored = dict(row, **{key.time_col: row.get(f"{key.time_col}_stored", row[key.time_col])})
    raise StoreConflictError(
        _describe(key, stored, col, row[f"{col}_stored"], row[col], "in the store")
        + f"; {bad.height:,} row(s) disagree with the store. Nothing was written. Check which source is right: "
        "if it is the store, fix or leave out this file; if it is the file, import into a fresh store "
        "(--store NEW) from the sources you trust"
    )
