"""``rltrade scorecard RUN_DIR``: the design's five success metrics, each PASS / FAIL / NOT MEASURED."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from rltrade.cli.app import app, console

if TYPE_CHECKING:
    from rltrade.training.scorecard import Scorecard

STYLE = {"PASS": "bold green", "FAIL": "bold red", "NOT MEASURED": "yellow"}


@app.command("scorecard")
def scorecard_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run folder made by `rltrade train`.")],
    basic_run: Annotated[
        Path | None,
        typer.Option("--basic-run", help="A basic-layout run on the same market: convergence compares with it."),
    ] = None,
) -> None:
    """Score the run's five success metrics from its folder (no training); writes RUN_DIR/scorecard.json."""
    from rltrade.training.scorecard import score_run

    print_scorecard(score_run(run_dir, basic_run=basic_run))
    console.print(f"scorecard: {run_dir / 'scorecard.json'}")


def print_scorecard(card: Scorecard) -> None:
    """Print the scorecard as a table (metric, verdict, figure, target), then each metric's definition.

    Parameters
    ----------
    card
        The scored run (:func:`rltrade.training.scorecard.score_run`).
    """
    table = Table(
        title=f"scorecard · {card.layout} layout ({card.layout_size:,} features) · {card.market} market",
        caption=f"evaluation: {card.evaluation}",
    )
    for col in ("metric", "verdict", "figure", "target"):
        table.add_column(col, overflow="fold")
    for m in card.metrics:
        figure = Text(m.figure)
        if m.alarm:
            figure.append(f"\n{m.alarm}", style="bold red")
        table.add_row(m.name, Text(m.status, style=STYLE.get(m.status, "")), figure, m.target)
    console.print(table)
    for m in card.metrics:
        console.print(Text(f"{m.name}: {m.definition} (from {m.source})", style="dim"))
