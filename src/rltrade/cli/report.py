"""``rltrade report RUN_DIR``: the run's self-contained HTML report (rltrade.report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rltrade.cli.app import app, console, progress_bar
from rltrade.cli.errors import UsageError


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run folder made by `rltrade train` and `rltrade backtest`.")],
    out: Annotated[Path | None, typer.Option("--out", help="HTML file to write (default RUN_DIR/report.html).")] = None,
) -> None:
    """Write one self-contained HTML file: candles with pivots, trades, equity, regimes, training curves, tables."""
    from rltrade.report.html import write_report
    from rltrade.report.market import ReportDataError
    from rltrade.training.bundle import BundleError

    with progress_bar() as bar:
        task = bar.add_task("report", total=7)

        def report(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        try:
            path = write_report(run_dir, out, progress=report)
        except (BundleError, ReportDataError) as exc:
            raise UsageError(str(exc)) from None
    size_mb = path.stat().st_size / 1e6
    console.print(f"wrote {path} ({size_mb:.1f} MB, self-contained: open it in any browser, no network needed)")
