"""Names in the store: a dataset's key (exchange, symbol, kind, timeframe), its folder, and times shown as ISO."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from rltrade.data.schema import BAR_KEY, BAR_SCHEMA, TRADE_KEY, TRADE_SCHEMA
from rltrade.data.store_manifest import Partitioning
from rltrade.types import Kind, Timeframe

TICK = "tick"
"""Timeframe folder name used for trades."""


def iso(us: int) -> str:
    """``1723161600000000`` → ``2024-08-09T00:00:00Z`` (µs shown only when not whole seconds)."""
    when = dt.datetime.fromtimestamp(us // 1_000_000, tz=dt.UTC).replace(microsecond=us % 1_000_000)
    return when.isoformat(timespec="microseconds" if us % 1_000_000 else "seconds").replace("+00:00", "Z")


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

    @property
    def partitioning(self) -> str:
        """How the dataset is cut into files: ``day``, ``month`` or ``year``."""
        return Partitioning.for_timeframe(self.timeframe)

    @property
    def relpath(self) -> str:
        """The dataset folder relative to the root, ``/``-separated (its name in the root manifest)."""
        tf = self.timeframe.value if self.timeframe is not None else TICK
        return f"exchange={self.exchange}/symbol={self.symbol}/kind={self.kind.value}/timeframe={tf}"

    def folder(self, root: Path) -> Path:
        """Return the dataset's folder under ``root``."""
        return root / self.relpath

    @staticmethod
    def from_relpath(relpath: str) -> DatasetKey:
        """Parse a dataset folder name (``exchange=…/symbol=…/kind=…/timeframe=…``)."""
        parts = dict(p.split("=", 1) for p in relpath.split("/"))
        tf = None if parts["timeframe"] == TICK else Timeframe.parse(parts["timeframe"])
        return DatasetKey(parts["exchange"], parts["symbol"], Kind(parts["kind"]), tf)

    def __str__(self) -> str:
        """Return ``exchange/symbol/kind/timeframe``."""
        tf = self.timeframe.value if self.timeframe is not None else TICK
        return f"{self.exchange}/{self.symbol}/{self.kind.value}/{tf}"
