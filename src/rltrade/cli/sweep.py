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


@app.command("audit")
def audit_cmd(
    sweep_dir: Annotated[Path, typer.Argument(help="A finished sweep folder (holds sweep.json).")],
) -> None:
    """Selection-bias audit: score every trial of a frozen sweep once on test; print the validation–test gaps."""
    from rltrade.report.sweep import write_sweep_report
    from rltrade.training.audit import run_audit

    if not sweep_dir.is_dir():
        raise UsageError(f"{sweep_dir}: no such sweep folder; pass the --out folder of a finished `rltrade sweep`")
    audit = run_audit(sweep_dir, progress=lambda line: console.print(line, highlight=False))
    print_audit_table(audit.data, sweep_dir)
    report = write_sweep_report(sweep_dir)
    console.print(f"audit: {audit.path}; report: {report} (the selection in sweep.json is unchanged)")


def print_audit_table(data: dict[str, Any], folder: Path) -> None:
    """One row per trial and baseline: validation, test, gap; Spearman and the chosen trial's gap below."""
    table = Table(
        title=f"selection-bias audit — {folder} (total return after costs; gap = validation − test)",
        caption=audit_caption(data),
    )
    for col in ("policy", "state", "validation", "test", "gap"):
        table.add_column(col, justify="left" if col in ("policy", "state") else "right")
    chosen = data.get("chosen_trial")
    for r in data["rows"]:
        name = r["name"] + (" (chosen)" if r["trial"] is not None and r["trial"] == chosen else "")
        table.add_row(
            name, r["state"], _cell(r["validation"], pct=True), _cell(r["test"], pct=True), _cell(r["gap"], pct=True)
        )
    console.print(table)


def audit_caption(data: dict[str, Any]) -> str:
    """Return the audit's summary line: rank correlation, chosen gap vs median gap, window lengths."""
    rho = data.get("spearman")
    rho_text = "not computed (fewer than 3 finished trials)" if rho is None else f"{rho:+.2f}"
    return (
        f"Spearman(validation, test) over {data.get('n_ranked', 0)} finished trials: {rho_text} · chosen trial "
        f"{data.get('chosen_trial')} gap {_cell(data.get('chosen_gap'), pct=True)} vs median gap "
        f"{_cell(data.get('median_gap'), pct=True)} · test {data.get('test_steps')} steps, validation windows "
        f"{data.get('validation_steps')} steps · {data.get('selection_label')}"
    )
