"""``rltrade results RUN_DIRS... --out docs/RESULTS.md``: the results page, written from walk-forward folders."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from rltrade.cli.app import app, console
from rltrade.cli.errors import UsageError


@app.command("results")
def results_cmd(
    folders: Annotated[list[Path], typer.Argument(help="Walk-forward folders (each holds walkforward.json).")],
    out: Annotated[Path, typer.Option("--out", help="Markdown file to write.")] = Path("docs/RESULTS.md"),
) -> None:
    """Write the results page (verdict, per-fold and pooled tables with CIs, per regime) from walk-forward folders."""
    from rltrade.data.atomic import atomic_write
    from rltrade.report.results import ResultsError, load_walkforward, results_markdown, verdict_sentence

    command = "rltrade results " + " ".join(shlex.quote(str(f)) for f in folders) + f" --out {shlex.quote(str(out))}"
    try:
        text = results_markdown(folders, command=command)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda fh: fh.write(text.encode()))
    for f in folders:
        console.print(f"{f}: {verdict_sentence(load_walkforward(f)['verdict']).replace('**', '')}", highlight=False)
    console.print(f"results: {out}")
