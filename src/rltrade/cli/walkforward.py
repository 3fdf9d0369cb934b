"""``rltrade walkforward`` and ``rltrade ablation``: many independent trainings as Ray jobs, one table."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import TextColumn
from rich.table import Table
from rich.text import Text

from rltrade.cli.app import ConfigOpt, app, console, progress_bar
from rltrade.cli.errors import UsageError
from rltrade.cli.train import FeeOpt, FromOpt, PresetOpt, RealOpt, ToOpt, fee_env, range_overrides
from rltrade.config import Config, costs_caption

WALKFORWARD_BASELINES = ("flat", "buy_and_hold", "supervised", "momentum")
"""The baselines the walk-forward table shows beside the agent (``walkforward.json`` holds every baseline of every
fold, the random ones included)."""

SeedsOpt = Annotated[int, typer.Option("--seeds", help="Seeds per fold (cfg.seed, cfg.seed + 1, ...).")]
RayOpt = Annotated[
    str | None, typer.Option("--ray-address", help="Ray cluster to run the jobs on (default: a local Ray).")
]
CpusOpt = Annotated[int | None, typer.Option("--num-cpus", help="CPUs of the local Ray (default: all).")]
StepsOpt = Annotated[int | None, typer.Option("--steps", help="Override train.total_steps of every job.")]
StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", help="Store to read the market from (sets data.store; e.g. one imported month)."),
]


def load_cfg(
    config: Path | None,
    preset: str | None,
    steps: int | None,
    start: str | None = None,
    end: str | None = None,
    fee: str | None = None,
    store: Path | None = None,
) -> Config:
    """Load the config of ``config`` over ``preset``, with ``--steps/--from/--to/--fee/--store`` on top."""
    from rltrade.training.presets import deep_merge, load_with_preset

    overrides: dict[str, Any] = {"train": {"total_steps": steps}} if steps is not None else {}
    env = fee_env(fee)
    if env:
        overrides["env"] = env
    if store is not None:
        overrides["data"] = {"store": str(store)}
    return load_with_preset(config, preset, deep_merge(overrides, range_overrides(start, end)))


def _prepare_data(cfg: Config, preset: str | None, real_data: Path | None) -> None:
    from rltrade.cli.train import run_data_step

    run_data_step(cfg, preset, real_data)


def _out(out: Path | None, what: str) -> Path:
    return out or Path("runs") / f"{what}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _utc(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")


def _pct(s: dict[str, Any], key: str = "mean") -> str:
    v = s.get(key)
    return "-" if v is None else f"{v:+.3%}"


def _num(s: dict[str, Any], key: str = "mean") -> str:
    v = s.get(key)
    return "-" if v is None else f"{v:+.3f}"


def _std(s: dict[str, Any]) -> str:
    v = s.get("std")
    return "-" if v is None else f"{v:.3f}"


def _spread_pct(s: dict[str, Any]) -> str:
    std = s.get("std")
    return f"{_pct(s)} ± {'-' if std is None else format(std, '.3%')}"


def _counts(counts: dict[str, int]) -> str:
    return " ".join(f"{name}×{n}" for name, n in counts.items()) or "-"


def _run_with_bar(title: str, run: Any) -> Any:
    with progress_bar(TextColumn("{task.fields[last]}"), transient=False) as bar:
        task = bar.add_task(title, total=None, last="starting Ray")

        def report(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, last=what)

        return run(report)


def _print_failures(failed: list[dict[str, Any]]) -> None:
    for f in failed:
        console.print(Text.assemble((f"job {f['name']} failed:", "red"), f" {f['error']}"), highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command("walkforward")
def walkforward_cmd(
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    folds: Annotated[int | None, typer.Option("--folds", help="Folds (default splits.walk_forward_folds).")] = None,
    seeds: SeedsOpt = 3,
    ray_address: RayOpt = None,
    num_cpus: CpusOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default runs/walkforward-<time>).")] = None,
    expanding: Annotated[bool, typer.Option(help="Train each fold on all earlier chunks, not just the last.")] = False,
    steps: StepsOpt = None,
    real_data: RealOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    fee: FeeOpt = None,
    store: StoreOpt = None,
) -> None:
    """Walk-forward: retrain the agent on rolling folds, several seeds each, test each fold after its training."""
    from rltrade.training.walkforward import WalkForwardError, run_walkforward

    cfg = load_cfg(config, preset, steps, start, end, fee, store)
    _prepare_data(cfg, preset, real_data)
    folder = _out(out, "walkforward")
    n_folds = folds if folds is not None else cfg.splits.walk_forward_folds
    try:
        result = _run_with_bar(
            f"{n_folds} folds × {seeds} seeds",
            lambda report: run_walkforward(
                cfg,
                folder,
                folds=n_folds,
                seeds=seeds,
                ray_address=ray_address,
                num_cpus=num_cpus,
                progress=report,
                expanding=expanding,
            ),
        )
    except WalkForwardError as exc:
        raise UsageError(str(exc)) from None
    table = Table(
        title=f"walk-forward: agent's test return over seeds beside baselines (PnL after costs) — {folder}",
        caption=costs_caption(cfg.env),
    )
    for col in ("fold", "test range (UTC)", "seeds", "return mean ± std", "min", "max", "Sharpe mean ± std"):
        table.add_column(col, justify="left" if col.startswith("test") else "right")
    for col in ("flat", "buy & hold", "supervised", "momentum", "selected"):
        table.add_column(col, justify="right")
    for f in result.aggregate["per_fold"]:
        base = f["baselines"]
        table.add_row(
            str(f["fold"]),
            f"{_utc(f['test']['start_us'])} → {_utc(f['test']['end_us'])}",
            str(f["test_return"]["n"]),
            _spread_pct(f["test_return"]),
            _pct(f["test_return"], "min"),
            _pct(f["test_return"], "max"),
            f"{_num(f['sharpe'])} ± {_std(f['sharpe'])}",
            *(_pct(base[b], "test_return") if b in base else "-" for b in WALKFORWARD_BASELINES),
            _counts(f.get("selected", {})),
        )
    o = result.aggregate["overall"]
    table.add_row(
        "all",
        "",
        str(o["test_return"]["n"]),
        _spread_pct(o["test_return"]),
        _pct(o["test_return"], "min"),
        _pct(o["test_return"], "max"),
        f"{_num(o['sharpe'])} ± {_std(o['sharpe'])}",
        *("" for _ in WALKFORWARD_BASELINES),
        _counts(o.get("selected", {})),
        end_section=True,
    )
    console.print(table)
    for r in result.rows:
        sel = r.get("selection")
        if isinstance(sel, dict):
            console.print(f"fold {r['fold']} seed {r['seed']}: {sel['label']}", highlight=False)
    if result.verdict is not None:
        from rltrade.report.results import verdict_sentence

        for f in result.verdict["folds"]:
            sel = f.get("selection")
            picked = "not recorded" if not isinstance(sel, dict) else sel["label"]
            console.print(f"fold {f['fold']}, selected per fold (seeds, flat, buy-and-hold): {picked}", highlight=False)

        console.print(verdict_sentence(result.verdict).replace("**", ""), highlight=False)
    console.print(f"rows per job, the aggregate and the verdict: {result.path} (write it up: rltrade results {folder})")
    _print_failures(result.failed)


@app.command("ablation")
def ablation_cmd(
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    blocks: Annotated[
        str, typer.Option("--blocks", help="Comma-separated blocks to remove one at a time.")
    ] = "ticks,btc,returns,cnn,pivots,regime",
    seeds: SeedsOpt = 3,
    ray_address: RayOpt = None,
    num_cpus: CpusOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default runs/ablation-<time>).")] = None,
    steps: StepsOpt = None,
    real_data: RealOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
) -> None:
    """Ablation: retrain without one state block at a time; test return and its change against all blocks."""
    from rltrade.training.ablation import run_ablation
    from rltrade.training.walkforward import WalkForwardError

    cfg = load_cfg(config, preset, steps, start, end)
    _prepare_data(cfg, preset, real_data)
    folder = _out(out, "ablation")
    names = tuple(b.strip() for b in blocks.split(",") if b.strip())
    try:
        result = _run_with_bar(
            f"ablation × {seeds} seeds",
            lambda report: run_ablation(
                cfg,
                folder,
                blocks=names,
                seeds=seeds,
                ray_address=ray_address,
                num_cpus=num_cpus,
                progress=report,
            ),
        )
    except WalkForwardError as exc:
        raise UsageError(str(exc)) from None
    table = Table(
        title=f"ablation on the test range (PnL after costs; Δ paired by seed) — {folder}",
        caption=costs_caption(cfg.env),
    )
    for col in ("removed", "status", "seeds", "return mean ± std", "Δ vs all mean ± std", "Sharpe", "dir. acc."):
        table.add_column(col, justify="left" if col in ("removed", "status") else "right")
    for s in result.summary:
        acc = s["mean_direction_accuracy"]
        table.add_row(
            "nothing (all blocks)" if s["removed"] == "none" else s["removed"],
            s["status"],
            str(s["seeds"]),
            _spread_pct(s["test_return"]),
            _spread_pct(s["delta_vs_all"]) if s["removed"] != "none" else "",
            _num(s["sharpe"]),
            "-" if acc is None else f"{acc:.3f}",
        )
    console.print(table)
    console.print(f"rows: {result.path}")
    _print_failures([{"name": f"{r['removed']} seed {r['seed']}", **r} for r in result.rows if "error" in r])
