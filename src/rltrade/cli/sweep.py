"""``rltrade sweep``: an Optuna search over a YAML space, trials as Ray tasks, do-no-harm selection, one table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from rltrade.cli.app import ConfigOpt, app, console
from rltrade.cli.errors import UsageError
from rltrade.cli.train import PresetOpt, RealOpt
from rltrade.cli.walkforward import CpusOpt, RayOpt, _out, _prepare_data, load_cfg


@app.command("sweep")
def sweep_cmd(
    space: Annotated[Path, typer.Option("--space", help="YAML search space (params and budget).")],
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Sweep folder (default runs/sweep-<time>); resumed.")
    ] = None,
    ray_address: RayOpt = None,
    num_cpus: CpusOpt = None,
    sequential: Annotated[bool, typer.Option(help="Run trials one after another in this process (no Ray).")] = False,
    allow_overfit: Annotated[
        bool, typer.Option("--allow-overfit", help="Keep a selection whose PBO is ≥ selection.max_pbo.")
    ] = False,
    final: Annotated[bool, typer.Option(help="Train the chosen configuration and evaluate it once on test.")] = True,
    steps: Annotated[int | None, typer.Option("--steps", help="Override train.total_steps of every run.")] = None,
    real_data: RealOpt = None,
) -> None:
    """Search hyperparameters on inner walk-forward validation folds (never the test range); select with do no harm."""
    from rltrade.config import ConfigError
    from rltrade.report.sweep import write_sweep_report
    from rltrade.training.sweep import SweepError, load_space, run_sweep

    cfg = load_cfg(config, preset, steps)
    try:
        spec = load_space(space, cfg)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    _prepare_data(cfg, preset, real_data)
    folder = _out(out, "sweep")
    try:
        result = run_sweep(
            cfg,
            spec,
            folder,
            executor="local" if sequential else "ray",
            ray_address=ray_address,
            num_cpus=num_cpus,
            allow_overfit=allow_overfit,
            final=final,
            progress=lambda line: console.print(line, highlight=False),
        )
    except SweepError as exc:
        raise UsageError(str(exc)) from None
    print_sweep_table(result.trials, result.pbo, result.selection, folder)
    if result.final is not None:
        m = result.final["metrics"]
        console.print(
            "test range, evaluated once (PnL after costs, the config's fee): "
            + ", ".join(f"{k} {v['total_return']:+.3%}" for k, v in m.items()),
            highlight=False,
        )
    report = write_sweep_report(folder)
    console.print(f"trials, PBO and selection: {result.path}; report: {report}")


def print_sweep_table(
    trials: list[dict[str, Any]], pbo: dict[str, Any] | None, selection: dict[str, Any], folder: Path
) -> None:
    """One row per trial (searched values, objective, re-run), with the PBO and the selection below."""
    names = sorted({k for t in trials for k in t.get("params", {})})
    pbo_text = "not computed" if pbo is None else f"{pbo['pbo']:.2f} ({pbo['n_combinations']:,} CSCV splits)"
    table = Table(
        title=f"sweep — {folder} (objective: median over inner folds of the validation return after costs)",
        caption=f"PBO {pbo_text} · {selection['label']}",
    )
    for col in ("trial", "state", *names, "objective", "re-run (3 seeds)"):
        table.add_column(col, justify="left" if col == "state" else "right")
    for t in trials:
        cells = [str(t["number"]), t["state"], *(_cell(t["params"].get(n)) for n in names)]
        cells += [_cell(t.get("value"), pct=True), _cell(t.get("rerun_value"), pct=True)]
        table.add_row(*cells)
    console.print(table)
    console.print(selection["label"], highlight=False)


def _cell(v: Any, *, pct: bool = False) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:+.3%}" if pct else f"{v:.4g}"
    return str(v)
