"""``rltrade report RUN_DIR``: the run's self-contained HTML report (rltrade.report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rltrade.cli.app import app, console, progress_bar


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run folder made by `rltrade train` and `rltrade backtest`.")],
    out: Annotated[Path | None, typer.Option("--out", help="HTML file to write (default RUN_DIR/report.html).")] = None,
) -> None:
    """Write one self-contained HTML file: candles with pivots, trades, equity, regimes, training curves, tables."""
    from rltrade.report.html import write_report

    with progress_bar() as bar:
        task = bar.add_task("report", total=7)

        def report(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        # A folder that is not a run (BundleError) or lacks what the report needs (ReportDataError): exit 3.
        path = write_report(run_dir, out, progress=report)
    size_mb = path.stat().st_size / 1e6
    console.print(f"wrote {path} ({size_mb:.1f} MB, self-contained: open it in any browser, no network needed)")
