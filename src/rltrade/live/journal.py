"""What a live session writes as it runs: a structured JSON-lines log and a CSV of per-decision metrics.

Both files are appended to (a restarted session continues them) and flushed line by line, so a crash
loses at most the line being written. ``log.jsonl``: one object per line with ``wall_us`` (µs since the
epoch), ``kind`` (``start``, ``decision``, ``fill``, ``status``, ``checkpoint``, ``stop``, ``error``) and
the kind's fields. ``metrics.csv``: one row per decision (:data:`METRIC_COLUMNS`). Secrets never reach
either: nothing here reads the environment.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from rltrade.live.broker import Fill
from rltrade.live.engine import Decision, LiveEngine, wall_us

METRIC_COLUMNS: Final = (
    "wall_us",
    "t_idx",
    "time_us",
    "action",
    "position",
    "forced",
    "mark",
    "equity",
    "fees_paid",
    "fills",
    "trades_processed",
    "known_dropped",
    "late_dropped",
    "stale_roles",
)


class Journal:
    """``log.jsonl`` and ``metrics.csv`` in ``folder`` (module docstring)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / "log.jsonl"
        self.csv_path = folder / "metrics.csv"
        new_csv = not self.csv_path.exists() or self.csv_path.stat().st_size == 0
        self._log = self.log_path.open("a", encoding="utf-8", buffering=1)
        self._csv_file = self.csv_path.open("a", encoding="utf-8", newline="", buffering=1)
        self._csv = csv.writer(self._csv_file)
        if new_csv:
            self._csv.writerow(METRIC_COLUMNS)

    def event(self, kind: str, **fields: Any) -> None:
        """Append one log line."""
        self._log.write(json.dumps({"wall_us": wall_us(), "kind": kind, **fields}, default=str) + "\n")

    def decision(self, d: Decision, engine: LiveEngine) -> None:
        """Log decision ``d`` and append its metrics row."""
        b, c = engine.broker, engine.counters
        equity = b.equity_at(engine.last_price)
        self.event("decision", t_idx=d.t_idx, time_us=d.time_us, action=d.action, position=d.position, forced=d.forced)
        self._csv.writerow(
            (
                wall_us(),
                d.t_idx,
                d.time_us,
                d.action,
                d.position,
                d.forced or "",
                d.mark,
                equity,
                b.fees_paid,
                c.fills,
                c.trades_processed,
                c.known_dropped,
                c.late_dropped,
                "|".join(sorted(engine.stale)),
            )
        )

    def fill(self, f: Fill) -> None:
        """Record a fill as a ``fill`` event."""
        self.event(
            "fill",
            t_idx=f.t_idx,
            fill_us=f.fill_us,
            trade_us=f.trade_us,
            price=f.price,
            position=f.position,
            prev_position=f.prev_position,
            cost=f.cost,
            equity=f.equity,
        )

    def close(self) -> None:
        """Close the event log and the CSV file."""
        self._log.close()
        self._csv_file.close()

    def __enter__(self) -> Journal:
        """Return the journal; the context closes it on exit."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the journal."""
        self.close()
