"""``rltrade run``: the main job that ``make run`` calls, on the embedded synthetic default."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from rltrade.cli.app import ConfigOpt, app, console, load
from rltrade.cli.data import _progress, print_report, print_summary
from rltrade.data.pipeline import data_report, synthesize_to_store, verify_resampling
from rltrade.data.store import Store


@app.command("run")
def run(
    config: ConfigOpt = None,
    fresh: Annotated[bool, typer.Option(help="Delete the store first.")] = False,
) -> None:
    """The main job: synthetic market → store → resampling check → data report."""
    import shutil

    cfg = load(config)
    if fresh and cfg.data.store.exists():
        shutil.rmtree(cfg.data.store)
    store = Store(cfg.data.store)
    console.rule("[bold]1 · market data")
    with _progress() as bar:
        task = bar.add_task("synthesising", total=None)
        summary = synthesize_to_store(
            cfg.data, store, progress=lambda d, t, w: bar.update(task, completed=d, total=t, description=w)
        )
    print_summary(summary)
    console.rule("[bold]2 · resampling check (stored bars vs bars rebuilt from finer data)")
    table = Table()
    for col in ("symbol", "from", "to", "bars compared", "mismatched"):
        table.add_column(col, justify="right" if col in ("bars compared", "mismatched") else "left")
    for symbol in (cfg.data.symbol, cfg.data.reference):
        for check in verify_resampling(store, exchange=cfg.data.exchange, symbol=symbol):
            table.add_row(symbol, check.src, check.dst.value, f"{check.compared:,}", str(check.mismatched))
    console.print(table)
    console.rule("[bold]3 · data report")
    print_report(data_report(store))
    console.print(f"store: {store.root.resolve()}")
