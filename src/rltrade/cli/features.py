"""``rltrade features ...`` and ``rltrade check ...``: the state layout and the look-ahead check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.table import Table
from rich.text import Text

from rltrade.cli.app import ConfigOpt, app, console, load, progress_bar
from rltrade.cli.errors import UsageError
from rltrade.cli.train import PresetOpt
from rltrade.config import LAYOUT_NAMES, Config, FeaturesConfig
from rltrade.data.cleaning import fmt_time
from rltrade.data.market import load_market
from rltrade.data.splits import TimeRange
from rltrade.features.layout import build_layout
from rltrade.features.lookahead import LookaheadCheck, sample_times, state_blocks
from rltrade.types import Timeframe

if TYPE_CHECKING:
    from rltrade.models.blocks import CnnRowsFn
    from rltrade.models.train import TrainedCnn

features_app = typer.Typer(help="The state: layouts and blocks.", no_args_is_help=True)
check_app = typer.Typer(help="Correctness checks.", no_args_is_help=True)
app.add_typer(features_app, name="features")
app.add_typer(check_app, name="check")

LayoutOpt = Annotated[
    str | None,
    typer.Option("--layout", help=f"State layout: {', '.join(LAYOUT_NAMES)} (default: the config's)."),
]


def _features_cfg(config: ConfigOpt, layout: str | None) -> FeaturesConfig:
    return _features_cfg_of(load(config), layout)


@features_app.command("layout")
def layout_cmd(config: ConfigOpt = None, layout: LayoutOpt = None) -> None:
    """Print the state layout: blocks, shapes, sizes, slices and totals."""
    state = build_layout(_features_cfg(config, layout).layout)
    console.print(state.rich_table())
    console.print(f"flags: {', '.join(state.flag_names)}")


@check_app.command("lookahead")
def lookahead_cmd(
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    layout: LayoutOpt = None,
    run: Annotated[
        Path | None,
        typer.Option("--run", help="Check this run: its config, its fitted statistics' range and its CNN models."),
    ] = None,
    times: Annotated[int, typer.Option("--times", "-n", help="Random check times (half over the history).")] = 8,
    closes: Annotated[
        int, typer.Option("--closes", help="Bar closes per timeframe, each checked at close − 1 µs, close, + 1 µs.")
    ] = 1,
    trades: Annotated[
        int, typer.Option("--trades", help="Trade timestamps, each checked at ts − 1 µs, ts, + 1 µs.")
    ] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the times, the perturbations and the stand-in CNNs.")] = 0,
    canary: Annotated[str | None, typer.Option("--plant-leak", hidden=True, help="Tests only.")] = None,
) -> None:
    """Recompute every state block on data cut at t, and with the future changed; report per block.

    Times sit where leaks live: at bar closes of every timeframe ±1 µs, at trade timestamps ±1 µs, and at
    random over the whole history. The future is changed by prices, sizes, trade times, dropped and
    added trades and flipped ``is_filled`` flags. The fitted statistic is refitted on every variant; the
    CNN blocks hold real rows (the run's fold models with ``--run``, else seeded untrained CNNs: causality
    does not depend on the weights). Every block must match exactly (bit for bit).

    Exit code 4 when any block differs (a look-ahead leak).
    """
    if min(times, closes, trades) < 0:
        raise UsageError("--times, --closes and --trades must be >= 0")
    cfg, fit_range, cnn_fn, source = _lookahead_setup(config, preset, run, seed)
    fcfg = _features_cfg_of(cfg, layout)
    state_layout = build_layout(fcfg.layout)
    early = {}
    if canary is not None:
        if not state_layout.has(canary) or state_layout.block(canary).kind != "bars":
            raise UsageError(f"--plant-leak must name a bar block of the layout, got {canary!r}")
        early = {canary: 1}
    frames = load_market(cfg.data)
    if run is None:
        span = frames.tick_span_us("eth") if fcfg.layout.ticks else None
        # A stand-in training range for the fitted statistic: the first half of the tick period.
        fit_range = TimeRange(span[0], (span[0] + span[1]) // 2 + 1) if span is not None else None
    check = LookaheadCheck()
    check.register(
        "state",
        state_blocks(
            state_layout,
            fcfg,
            fit_range=fit_range,
            cnn=cnn_fn if cnn_fn is not None and state_layout.has("cnn_hidden") else None,
            canary_early_us=early,
        ),
    )
    rng = np.random.default_rng(seed)
    t = sample_times(frames, times, rng, closes=closes, trades=trades)
    console.print(
        f"{len(t)} check times ({times} random, {closes} close(s) per timeframe and {trades} trade(s), each ±1 µs); "
        f"fitted statistics: {'refitted on ' + _range_text(fit_range) if fit_range else 'none'}; CNN rows: {source}",
        markup=False,
    )
    with progress_bar() as bar:
        task = bar.add_task("look-ahead check", total=len(t))
        report = check.run(frames, t, rng=rng, progress=lambda done, total: bar.update(task, completed=done))
    table = Table(title=f"look-ahead check: {len(t)} times × (truncated, perturbed)")
    for col in ("block", "checks", "differing", "max |diff|", "tolerance", "verdict"):
        table.add_column(col, justify="left" if col in ("block", "verdict") else "right")
    for name, res in report.blocks.items():
        verdict = Text("causal", style="green") if res.ok else Text("LEAK", style="bold red")
        tol = check.tolerance(name)
        tol_text = "exact" if tol == 0 else f"{tol:.0e}"
        table.add_row(name, str(res.checked), str(res.differing), f"{res.max_abs_diff:.3g}", tol_text, verdict)
    console.print(table)
    if not report.ok:
        console.print(Text(f"look-ahead leak in: {', '.join(report.leaky())}", style="bold red"))
        raise typer.Exit(4)
    console.print(Text("zero differences: every block is causal", style="green"))


def _features_cfg_of(cfg: Config, layout: str | None) -> FeaturesConfig:
    if layout is None:
        return cfg.features
    if layout not in LAYOUT_NAMES:
        raise UsageError(f"--layout must be one of the state layouts {', '.join(LAYOUT_NAMES)}, got {layout!r}")
    return cfg.features.model_copy(update={"layout": cfg.features.layout.model_copy(update={"name": layout})})


def _range_text(r: TimeRange) -> str:
    return f"[{fmt_time(r.start_us)}, {fmt_time(r.end_us)})"


def _lookahead_setup(
    config: Path | None, preset: str | None, run: Path | None, seed: int
) -> tuple[Config, TimeRange | None, CnnRowsFn | None, str]:
    """Return the config, the run's statistics' fit range, the CNN rows and where the rows come from."""
    from rltrade.features.market_features import FeatureStats
    from rltrade.models.blocks import fixed_cnn_fn, served_cnn_fn, untrained_cnns
    from rltrade.training.presets import load_with_preset

    if run is not None:
        from rltrade.training.bundle import open_bundle

        if config is not None or preset is not None:
            raise UsageError("--run brings its own config; drop --config / --preset")
        bundle = open_bundle(run)
        cfg = bundle.config
        stats: FeatureStats = bundle.feature_stats
        embargo_us = cfg.splits.embargo_s * 1_000_000
        models = _run_cnns(run / "cnn")
        if not models:
            return cfg, stats.qty_scale_fitted_on, None, f"none (no CNN models in {run / 'cnn'})"
        fn = served_cnn_fn(models, cfg.features, embargo_us=embargo_us)
        return cfg, stats.qty_scale_fitted_on, fn, f"the run's fold models ({', '.join(tf.value for tf in models)})"
    from rltrade.cli.train import run_data_step

    cfg = load_with_preset(config, preset)
    run_data_step(cfg, preset)
    fn = fixed_cnn_fn(untrained_cnns(cfg.cnn, seed=seed), cfg.features, embargo_us=0)
    return cfg, None, fn, "seeded untrained CNNs, all four timeframes"


def _run_cnns(folder: Path) -> dict[Timeframe, tuple[TrainedCnn, ...]]:
    """Load a run's saved fold models per timeframe (empty when the run has no CNN stage)."""
    from rltrade.models.io import load_cnn
    from rltrade.training.cnn_stage import METRICS_FILE

    path = folder / METRICS_FILE
    if not path.is_file():
        return {}
    metrics = json.loads(path.read_text())
    return {
        Timeframe(name): tuple(load_cnn(folder / f["file"]) for f in entry["folds"])
        for name, entry in metrics["timeframes"].items()
    }
