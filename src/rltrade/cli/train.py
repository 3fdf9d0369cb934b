"""``rltrade train`` and ``rltrade backtest``: train end to end from a config; evaluate a run folder."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.progress import TextColumn, TimeRemainingColumn
from rich.table import Table

from rltrade.cli.app import ConfigOpt, app, console, progress_bar
from rltrade.cli.errors import UsageError
from rltrade.config import FEE_TIERS, fee_overrides
from rltrade.training.presets import PRESETS

if TYPE_CHECKING:
    from rltrade.config import Config
    from rltrade.data.splits import TimeRange
    from rltrade.training.evaluate import Evaluation, PolicyMetrics
    from rltrade.training.regimes import RegimeRow

PresetOpt = Annotated[
    str | None,
    typer.Option("--preset", help=f"Training preset ({', '.join(PRESETS)}): defaults under the config file."),
]
RealOpt = Annotated[
    Path | None,
    typer.Option(
        "--real-data",
        help="Real-data folder of the real preset (default: shared/data/real beside rltrade's repository).",
    ),
]
FromOpt = Annotated[
    str | None,
    typer.Option("--from", help="Run on stored data from this UTC time (ISO date or date-time; sets data.start)."),
]
ToOpt = Annotated[
    str | None,
    typer.Option("--to", help="... up to this UTC time, exclusive (sets data.end)."),
]
FeeOpt = Annotated[
    str | None,
    typer.Option(
        "--fee",
        help=f"Taker fee: a tier ({', '.join(n for n, t in FEE_TIERS.items() if t.liquidity == 'taker')}) or a "
        "number (0.0004 or 0.04%); sets env.taker_fee and env.fee_tier. Maker tiers are refused (taker fills only).",
    ),
]


def fee_env(fee: str | None) -> dict[str, Any]:
    """Return the ``env`` overrides of ``--fee`` (empty without it); a bad value is a usage error (exit 2)."""
    if fee is None:
        return {}
    try:
        return fee_overrides(fee)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def range_overrides(start: str | None, end: str | None) -> dict[str, Any]:
    """Config overrides for ``--from`` / ``--to`` (validated with the config: a bad date is exit 2)."""
    data = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    return {"data": data} if data else {}


@app.command("train")
def train_cmd(
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="Run folder (default runs/<time>).")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue the run in this folder.")] = None,
    steps: Annotated[int | None, typer.Option(help="Override train.total_steps.")] = None,
    real_data: RealOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    fee: FeeOpt = None,
) -> None:
    """Train end to end: data → features → agent, with validation backtests and checkpoints."""
    from rltrade.training.bundle import refuse_existing_run
    from rltrade.training.presets import load_with_preset

    if resume is not None:
        from rltrade.training.bundle import open_bundle

        given = [flag for flag, value in (("--config", config), ("--preset", preset), ("--run-dir", run_dir),
                                          ("--steps", steps), ("--from", start), ("--to", end),
                                          ("--real-data", real_data), ("--fee", fee)) if value is not None]  # fmt: skip
        if given:
            raise UsageError(f"--resume continues the run on its own config and folder; drop {', '.join(given)}")
        train_run(open_bundle(resume).config, resume, resume=True)
        return
    if run_dir is not None:
        refuse_existing_run(run_dir)  # before any data preparation or CNN fitting
    overrides: dict[str, Any] = {"train": {"total_steps": steps}} if steps is not None else {}
    env = fee_env(fee)
    cfg = load_with_preset(
        config, preset, {**overrides, **range_overrides(start, end), **({"env": env} if env else {})}
    )
    run_data_step(cfg, preset, real_data)
    train_run(cfg, run_dir or Path("runs") / dt.datetime.now().strftime("%Y%m%d-%H%M%S"))


def run_data_step(cfg: Config, preset: str | None, source: Path | None = None) -> None:
    """Run the training preset's explicit data step (importing its files into ``data.store``), when it has one.

    A preset imports only into its own store (the ``data.store`` it sets): when the config names another
    store, nothing is written there and training reads that store as it is.
    """
    from rltrade.training.presets import preset as get_preset

    chosen = get_preset(preset) if preset is not None else None
    step = chosen.data_step if chosen is not None else None
    if chosen is None or step is None:
        return
    own = Path(chosen.overrides.get("data", {}).get("store", cfg.data.store))
    if Path(cfg.data.store) != own:
        console.print(
            f"the {preset} preset imports {step.what} only into its own store ({own}); your config names the "
            f"store {cfg.data.store}, so nothing is imported and training reads that store as it is "
            "(add data to it with `rltrade data import` or `rltrade data download`)"
        )
        return
    folder = source if source is not None else step.source
    with console.status(f"importing {step.what} from {folder} into {cfg.data.store}"):
        step.run(cfg.data, folder)


def train_run(cfg: Config, folder: Path, *, resume: bool = False) -> None:
    """Train ``cfg`` into ``folder`` (or resume the run there) with a progress bar, then print the outcome."""
    from rltrade.training.loop import train

    with progress_bar(TimeRemainingColumn(), TextColumn("{task.fields[live]}"), transient=False) as bar:
        task = bar.add_task("training", total=cfg.train.total_steps, live="")

        def report(step: int, total: int, live: dict[str, float]) -> None:
            text = "  ".join(f"{k} {v:.4g}" for k, v in live.items())
            bar.update(task, completed=step, total=total, live=text)

        result = train(cfg, folder, resume=resume, progress=report, log=console.print)
    console.print(
        f"trained {result.steps:,} steps, {result.updates:,} updates in {result.wall_s:.0f} s → {result.run_dir}"
    )
    if result.best_validation is not None:
        console.print(
            f"best validation return {result.best_validation['total_return']:+.4%} at step "
            f"{result.best_validation['step']:,}"
        )


METRIC_COLUMNS = {
    "total_return": "return",
    "sharpe": "sharpe",
    "sharpe_ci": "sharpe CI",
    "sortino": "sortino",
    "max_drawdown": "max DD",
    "n_trades": "trades",
    "fees_paid": "fees",
    "exposure": "exposure",
    "direction_accuracy": "dir. acc.",
    "win_rate": "win rate",
}
"""Metric key → column header of :func:`print_metrics_table`."""


def print_metrics_table(title: str, rows: Mapping[str, PolicyMetrics], costs: str | None = None) -> None:
    """One row per policy; a Sharpe interval column when the rows carry ``sharpe_ci_low`` / ``sharpe_ci_high``.

    ``costs`` (:func:`rltrade.config.costs_caption`) is the caption's first line: every table states its costs.
    """
    first = cast(Mapping[str, object], next(iter(rows.values()), {}))
    level = first.get("sharpe_ci_level")
    with_ci = isinstance(level, float)
    cols = [c for c in METRIC_COLUMNS if with_ci or c != "sharpe_ci"]
    annualisation = first.get("annualisation")
    lines = [costs] if costs else []
    lines += [f"Sharpe and Sortino annualised as {annualisation}"] if annualisation else []
    table = Table(title=title, caption="\n".join(lines) or None)
    table.add_column("policy")
    for c in cols:
        table.add_column(f"sharpe {level:.0%} CI" if c == "sharpe_ci" else METRIC_COLUMNS[c], justify="right")
    for name, m in rows.items():
        cells = []
        for c in cols:
            v = cast(Mapping[str, object], m).get(c)
            if c == "sharpe_ci":
                cells.append(f"[{m['sharpe_ci_low']:.1f}, {m['sharpe_ci_high']:.1f}]")
            elif isinstance(v, float):
                cells.append(f"{v:+.3%}" if c in ("total_return", "max_drawdown") else f"{v:.3f}")
            else:
                cells.append("-" if v is None else str(v))
        table.add_row(name, *cells)
    console.print(table)


REGIME_SOURCES = {
    "true": "true regimes recorded by the synthetic market",
    "classifier": "regimes labelled by the rule-based classifier (an estimate, not ground truth)",
}


def _print_regime_tables(rows: list[RegimeRow]) -> None:
    """One table per label source: a column per regime (with its steps), a row per policy."""
    for source, label in REGIME_SOURCES.items():
        mine = [r for r in rows if r["source"] == source]
        if not mine:
            continue
        regimes = list(dict.fromkeys(str(r["regime"]) for r in mine))
        policies = list(dict.fromkeys(str(r["policy"]) for r in mine))
        cell = {(str(r["policy"]), str(r["regime"])): r for r in mine}
        table = Table(
            title=f"per regime: {label}",
            caption="cell: return over the regime's steps · annualised Sharpe · direction accuracy",
        )
        table.add_column("policy")
        for regime in regimes:
            r0 = cell[(policies[0], regime)]
            table.add_column(f"{regime}\n{r0['n_steps']:,} steps ({r0['share_of_steps']:.0%})", justify="right")
        for policy in policies:
            cells = []
            for regime in regimes:
                r = cell[(policy, regime)]
                ok = r["n_steps"] > 0
                text = f"{r['return_contribution']:+.3%} · {r['sharpe']:.1f} · {r['direction_accuracy']:.0%}"
                cells.append(text if ok else "-")
            table.add_row(policy, *cells)
        console.print(table)


def _parse_period(text: str) -> TimeRange:
    """``START..END`` (ISO dates or date-times, UTC unless an offset is given; END exclusive) → TimeRange."""
    from rltrade.cli.data import _parse_time
    from rltrade.cli.errors import UsageError
    from rltrade.data.splits import TimeRange

    start, sep, end = text.partition("..")
    if not sep or not start or not end:
        raise UsageError(f"--period must be START..END, e.g. 2026-01-01T10:00..2026-01-01T12:00; got {text!r}")
    return TimeRange(_parse_time(start.strip(), "--period start"), _parse_time(end.strip(), "--period end"))


@app.command("backtest")
def backtest_cmd(
    run: Annotated[Path, typer.Option("--run", help="Run folder made by `rltrade train`.")],
    period: Annotated[
        str | None,
        typer.Option(
            "--period",
            help="START..END in UTC (ISO dates or date-times, END exclusive); default: the run's test range.",
        ),
    ] = None,
    basic_run: Annotated[
        Path | None,
        typer.Option("--basic-run", help="Companion run trained on the basic layout: its agent joins the baselines."),
    ] = None,
    resamples: Annotated[int, typer.Option(min=100, help="Block-bootstrap resamples per interval.")] = 1000,
    random_seeds: Annotated[int, typer.Option(min=1, help="Seeds of the random baseline.")] = 3,
    start: Annotated[str | None, typer.Option("--from", help="Backtest from this UTC time (with --to).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="... up to this UTC time, exclusive.")] = None,
    fee: FeeOpt = None,
) -> None:
    """Backtest a run's best checkpoint beside the baselines; refuses periods the run was fitted on."""
    from rltrade.cli.errors import UsageError
    from rltrade.training.evaluate import evaluate_bundle

    if (start is None) != (end is None) or (start is not None and period is not None):
        raise UsageError("give the backtest period as --from START --to END, or as --period START..END")
    if start is not None and end is not None:
        period = f"{start}..{end}"
    target = _parse_period(period) if period is not None else None
    result = evaluate_bundle(
        run,
        period=target,
        basic_run=basic_run,
        n_resamples=resamples,
        random_seeds=random_seeds,
        env_overrides=fee_env(fee),
    )
    print_evaluation(run, result, f"backtest of {run} (PnL after costs)")


def print_evaluation(run: Path, result: Evaluation, title: str) -> None:
    """Print the metrics table, the agent-vs-best-baseline interval and the per-regime tables of an evaluation."""
    print_metrics_table(title, result.metrics, result.costs)
    if result.selection is not None:
        console.print(str(result.selection["label"]), highlight=False)
    c = result.comparison
    verdict = "excludes 0" if c["ci_low"] > 0 or c["ci_high"] < 0 else "includes 0: no evidence of a difference"
    console.print(
        f"agent − best baseline ({c['baseline']}) Sharpe: {c['sharpe_diff']:+.2f}, "
        f"{c['ci_level']:.0%} CI [{c['ci_low']:+.2f}, {c['ci_high']:+.2f}] ({verdict}; paired stationary "
        f"block bootstrap, mean block {c['block_length']:.1f} steps, {c['n_resamples']} resamples)"
    )
    _print_regime_tables(result.regimes)
    console.print(f"metrics, per-regime rows and trades: {run / 'eval'}")
