"""``rltrade train`` and ``rltrade backtest``: train end to end from a config; evaluate a run folder."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import TextColumn, TimeRemainingColumn
from rich.table import Table

from rltrade.cli.app import ConfigOpt, app, console, progress_bar

PresetOpt = Annotated[str | None, typer.Option("--preset", help="demo or full: defaults under the config file.")]


@app.command("train")
def train_cmd(
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="Run folder (default runs/<time>).")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue the run in this folder.")] = None,
    steps: Annotated[int | None, typer.Option(help="Override train.total_steps.")] = None,
) -> None:
    """Train end to end: data → features → agent, with validation backtests and checkpoints."""
    from rltrade.training.loop import train
    from rltrade.training.presets import load_with_preset

    overrides = {"train": {"total_steps": steps}} if steps is not None else None
    if resume is not None:
        from rltrade.training.bundle import open_bundle

        cfg = open_bundle(resume).config
        folder = resume
    else:
        cfg = load_with_preset(config, preset, overrides)
        folder = run_dir or Path("runs") / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    with progress_bar(TimeRemainingColumn(), TextColumn("{task.fields[live]}"), transient=False) as bar:
        task = bar.add_task("training", total=cfg.train.total_steps, live="")

        def report(step: int, total: int, live: dict[str, float]) -> None:
            text = "  ".join(f"{k} {v:.4g}" for k, v in live.items())
            bar.update(task, completed=step, total=total, live=text)

        result = train(cfg, folder, resume=resume is not None, progress=report, log=console.print)
    console.print(
        f"trained {result.steps:,} steps, {result.updates:,} updates in {result.wall_s:.0f} s → {result.run_dir}"
    )
    if result.best_validation is not None:
        console.print(
            f"best validation return {result.best_validation['total_return']:+.4%} at step "
            f"{result.best_validation['step']:,}"
        )


def print_metrics_table(title: str, rows: dict[str, dict[str, object]]) -> None:
    cols = (
        "total_return",
        "sharpe",
        "sortino",
        "max_drawdown",
        "n_trades",
        "fees_paid",
        "exposure",
        "direction_accuracy",
        "win_rate",
    )
    table = Table(title=title)
    table.add_column("policy")
    for c in cols:
        table.add_column(c, justify="right")
    for name, m in rows.items():
        cells = []
        for c in cols:
            v = m.get(c)
            if isinstance(v, float):
                cells.append(f"{v:+.3%}" if c in ("total_return", "max_drawdown") else f"{v:.3f}")
            else:
                cells.append("-" if v is None else str(v))
        table.add_row(name, *cells)
    console.print(table)


@app.command("backtest")
def backtest_cmd(
    run: Annotated[Path, typer.Option("--run", help="Run folder made by `rltrade train`.")],
    start: Annotated[str | None, typer.Option(help="UTC start of the period (default: the run's test range).")] = None,
    end: Annotated[str | None, typer.Option(help="UTC end of the period (exclusive).")] = None,
) -> None:
    """Backtest a run's best checkpoint beside the baselines; refuses periods the run was fitted on."""
    from rltrade.cli.data import _parse_time
    from rltrade.data.splits import TimeRange
    from rltrade.training.evaluate import evaluate_run

    period = None
    if start is not None or end is not None:
        if start is None or end is None:
            from rltrade.cli.errors import UsageError

            raise UsageError("give both --start and --end, or neither (the run's test range)")
        period = TimeRange(_parse_time(start, "--start"), _parse_time(end, "--end"))
    metrics = evaluate_run(run, period=period)
    print_metrics_table(f"backtest of {run} (PnL after costs)", metrics)
    console.print(f"metrics and trades: {run / 'eval'}")
