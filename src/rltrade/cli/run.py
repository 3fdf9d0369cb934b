"""``rltrade run``: the main job that ``make run`` calls, on the embedded synthetic default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from rltrade.cli.app import ConfigOpt, app, console, progress_bar
from rltrade.cli.data import print_report, print_summary
from rltrade.data.pipeline import data_report, synthesize_to_store, verify_resampling
from rltrade.data.store import Store


@app.command("run")
def run(
    config: ConfigOpt = None,
    fresh: Annotated[bool, typer.Option(help="Delete the store first.")] = False,
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Run folder of the training step.")] = Path("runs/demo"),
    train: Annotated[bool, typer.Option(help="Train and backtest the demo agent after the data steps.")] = True,
) -> None:
    """Run the main job: market → store → resample check → data report → train → backtest → scorecard → report."""
    import shutil

    from rltrade.training.presets import load_with_preset

    cfg = load_with_preset(config, "demo")
    if fresh and cfg.data.store.exists():
        shutil.rmtree(cfg.data.store)
    store = Store(cfg.data.store)
    console.rule(Text("1 · market data", style="bold"))
    with progress_bar() as bar:
        task = bar.add_task("synthesising", total=None)
        summary = synthesize_to_store(
            cfg.data, store, progress=lambda d, t, w: bar.update(task, completed=d, total=t, description=w)
        )
    print_summary(summary)
    console.rule(Text("2 · resampling check (stored bars vs bars rebuilt from finer data)", style="bold"))
    table = Table()
    for col in ("symbol", "from", "to", "bars compared", "mismatched"):
        table.add_column(col, justify="right" if col in ("bars compared", "mismatched") else "left")
    for symbol in (cfg.data.symbol, cfg.data.reference):
        for check in verify_resampling(store, exchange=cfg.data.exchange, symbol=symbol):
            table.add_row(symbol, check.src, check.dst.value, f"{check.compared:,}", str(check.mismatched))
    console.print(table)
    console.rule(Text("3 · data report", style="bold"))
    print_report(data_report(store))
    console.print(f"store: {store.root.resolve()}")
    if not train:
        return
    from rltrade.cli.scorecard import print_scorecard
    from rltrade.cli.train import print_evaluation, train_run
    from rltrade.report.html import write_report
    from rltrade.training.evaluate import evaluate_bundle
    from rltrade.training.scorecard import score_run

    console.rule(Text("4 · training (demo training preset: structured encoder, demo layout)", style="bold"))
    if run_dir.exists():
        # Replace a previous demo run, but never delete a folder that is not a run folder.
        if not (run_dir / "manifest.json").exists() and any(run_dir.iterdir()):
            from rltrade.cli.errors import UsageError

            raise UsageError(f"{run_dir} exists and is not a run folder; pass another --run-dir")
        shutil.rmtree(run_dir)
    train_run(cfg, run_dir)  # the config loaded above: the demo preset has no data step
    console.rule(Text("5 · backtest on the held-out test range, beside the baselines", style="bold"))
    print_evaluation(run_dir, evaluate_bundle(run_dir), "test range, PnL after costs")
    console.rule(Text("6 · scorecard: the design's five success metrics, scored against the demo layout", style="bold"))
    print_scorecard(score_run(run_dir))
    console.rule(Text("7 · report", style="bold"))
    with progress_bar() as bar:
        task = bar.add_task("report", total=None)
        report = write_report(run_dir, progress=lambda d, t, w: bar.update(task, completed=d, total=t, description=w))
    console.print(f"report: {report.resolve()} (self-contained HTML: open it in any browser)")
    console.print(f"run folder: {run_dir.resolve()}")
