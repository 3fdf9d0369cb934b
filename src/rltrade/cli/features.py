"""``rltrade features ...`` and ``rltrade check ...``: the state layout and the look-ahead check."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import typer
from rich.table import Table
from rich.text import Text

from rltrade.cli.app import ConfigOpt, app, console, load, progress_bar
from rltrade.cli.errors import UsageError
from rltrade.config import LAYOUT_NAMES, FeaturesConfig
from rltrade.data.market import load_market
from rltrade.features.layout import build_layout
from rltrade.features.lookahead import LookaheadCheck, sample_times, state_blocks

features_app = typer.Typer(help="The state: layouts and blocks.", no_args_is_help=True)
check_app = typer.Typer(help="Correctness checks.", no_args_is_help=True)
app.add_typer(features_app, name="features")
app.add_typer(check_app, name="check")

LayoutOpt = Annotated[
    str | None,
    typer.Option("--layout", help=f"State layout: {', '.join(LAYOUT_NAMES)} (default: the config's)."),
]


def _features_cfg(config: ConfigOpt, layout: str | None) -> FeaturesConfig:
    cfg = load(config).features
    if layout is None:
        return cfg
    if layout not in LAYOUT_NAMES:
        raise UsageError(f"--layout must be one of the state layouts {', '.join(LAYOUT_NAMES)}, got {layout!r}")
    return cfg.model_copy(update={"layout": cfg.layout.model_copy(update={"name": layout})})


@features_app.command("layout")
def layout_cmd(config: ConfigOpt = None, layout: LayoutOpt = None) -> None:
    """Print the state layout: blocks, shapes, sizes, slices and totals."""
    state = build_layout(_features_cfg(config, layout).layout)
    console.print(state.rich_table())
    console.print(f"flags: {', '.join(state.flag_names)}")


@check_app.command("lookahead")
def lookahead_cmd(
    config: ConfigOpt = None,
    layout: LayoutOpt = None,
    times: Annotated[int, typer.Option("--times", "-n", help="Random check times.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the times and the perturbations.")] = 0,
) -> None:
    """Recompute every state block on data truncated at t, and with the future perturbed; report per block.

    Exit code 4 when any block differs (a look-ahead leak).
    """
    cfg = load(config)
    fcfg = _features_cfg(config, layout)
    frames = load_market(cfg.data)
    check = LookaheadCheck()
    check.register("state", state_blocks(build_layout(fcfg.layout), fcfg))
    rng = np.random.default_rng(seed)
    t = sample_times(frames, times, rng)
    with progress_bar() as bar:
        task = bar.add_task("look-ahead check", total=len(t))
        report = check.run(frames, t, rng=rng, progress=lambda done, total: bar.update(task, completed=done))
    table = Table(title=f"look-ahead check: {len(t)} times × (truncated, perturbed)")
    for col in ("block", "checks", "differing", "max |diff|", "verdict"):
        table.add_column(col, justify="left" if col in ("block", "verdict") else "right")
    for name, res in report.blocks.items():
        verdict = Text("causal", style="green") if res.ok else Text("LEAK", style="bold red")
        table.add_row(name, str(res.checked), str(res.differing), f"{res.max_abs_diff:.3g}", verdict)
    console.print(table)
    if not report.ok:
        console.print(Text(f"look-ahead leak in: {', '.join(report.leaky())}", style="bold red"))
        raise typer.Exit(4)
    console.print(Text("zero differences: every block is causal", style="green"))
