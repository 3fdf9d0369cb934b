"""The report of a live session, written at shutdown: ``report.json`` and the trades and steps as Parquet.

``report.json``: session times, uptime, the decision clock, the engine's counters, the incomplete bars
formed across the start (``partial_bars``: seeded from klines or masked), latency p50/p99 per
stage, the feed's counters (when given), the position and equity, and the performance metrics of the
filled decisions by :func:`rltrade.training.backtest.backtest_actions` (the backtest's own code: PnL
after every cost, the open position closed at the last fill). ``trades.parquet`` / ``steps.parquet``:
that backtest's trades table and equity curve (absent before two fills).

Uptime is ``1 − degraded / alive``: the share of the session's wall time during which no role was stale
and the connection was up (:meth:`rltrade.live.engine.LiveEngine.degraded_us`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rltrade.data.atomic import write_json_atomic
from rltrade.live.engine import LiveEngine


def session_summary(
    engine: LiveEngine, *, started_us: int, ended_us: int, feed_stats: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Everything ``report.json`` holds except the metrics (module docstring)."""
    alive = max(ended_us - started_us, 1)
    degraded = engine.degraded_us(ended_us)
    b = engine.broker
    return {
        "started_us": started_us,
        "ended_us": ended_us,
        "alive_s": alive / 1e6,
        "degraded_s": degraded / 1e6,
        "uptime": 1.0 - min(degraded, alive) / alive,
        "clock": {
            "start_us": engine.clock_start_us,
            "step_us": engine.step_us,
            "decisions": engine.next_idx,
            "next_time_us": engine.next_time_us,
        },
        "counters": dataclasses.asdict(engine.counters),
        "partial_bars": dict(engine.builder.partial_bars),
        "latency_us": engine.latency.summary(),
        "feed": dict(feed_stats) if feed_stats is not None else None,
        "position": b.position,
        "pending_orders": b.n_decisions - b.n_filled,
        "equity": b.equity_at(engine.last_price),
        "fees_paid": b.fees_paid,
        "stale_roles": sorted(engine.stale),
    }


def write_report(folder: Path, engine: LiveEngine, summary: dict[str, Any]) -> dict[str, Any]:
    """Write ``report.json`` (``summary`` plus the metrics) and the Parquet tables into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    result = engine.broker.result()
    report = {**summary, "metrics": None if result is None else result.metrics}
    if result is not None:
        result.trades.write_parquet(folder / "trades.parquet")
        result.steps.write_parquet(folder / "steps.parquet")
    write_json_atomic(folder / "report.json", report)
    return report
