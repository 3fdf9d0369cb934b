"""Does the rich state earn its keep (issue 13, item 5)? The demo layout's agent vs the basic layout's, per option.

On the demo preset's planted-signal synthetic market (BTC leads ETH by 5 s), each variant is trained with
the same seeds and backtested greedily (its best validation checkpoint) on the held-out test range:

    basic          the ``basic`` layout (~100 features: recent ETH / BTC returns, regime), the demo agent
    demo           the ``demo`` layout (every block, short windows), the demo preset's agent with neither
                   option below (``block_norm`` and ``block_dropout`` off, whatever the preset sets)
    demo+norm      ``agent.block_norm``: per-block input standardisation fitted on training states
    demo+capacity  wider encoder: ``encoder_channels`` [16, 32] (demo: [8, 16]), ``encoder_hidden`` [128]
                   (demo: [64])
    demo+dropout   ``agent.block_dropout`` 0.2: whole blocks zeroed per sample in each update
    demo+all       the three together
    demo+returns   the layout's recent-returns blocks on (``features.layout.returns``: the last 30 1 s and 15
                   1 m log returns of ETH and BTC, what ``basic`` is made of); the ``demo`` preset has them
                   already, the ``full`` layout (15,588 features) does not
    demo+norm+returns  both
    demo+norm+dropout  block normalisation and dropout (the ``full`` agent never trades without the first)
    demo+recent    ``agent.encoder_recent_rows`` 10: the newest 10 rows of every tick and bar window also reach
                   the head unpatched (a full-resolution skip path beside the patch stacks; the layout is
                   unchanged, unlike ``+returns``)
    demo+norm+dropout+recent  the last two together (the ``full`` preset's agent plus the skip path)
    demo+norm+dropout+recent30  the same with the newest 30 rows (``basic`` has the last 30 1 s returns)
    demo+dropout+recent  the ``demo`` preset's agent (block dropout) plus the newest 10 rows
    demo+norm+dropout+recent30+returns  the ``full`` preset's agent on its layout plus the recent-returns blocks
                   (does the gap to ``basic`` come from where the lead is shown, or from the other blocks?)
    demo+norm+dropout+recent30diff  the ``full`` preset's agent with ``agent.encoder_recent_diff``: its skip
                   path passes the changes between the newest 31 rows of every window (a bar window's last 30
                   log returns), scaled per column, instead of the 30 rows (levels relative to the last close)
    demo+norm+dropout+recent30+wide  the ``full`` preset's agent with twice its encoder's widths
                   (``encoder_channels`` [32, 64], ``encoder_hidden`` [256, 256]; the config default, which
                   ``full`` keeps, is [16, 32] and [128, 128]): encoder capacity on ``full``
    sb3            stable-baselines3's DQN (default MLP, 50k buffer, ``optimize_memory_usage``) on the demo layout's
                   env, state and reward, one env for the same env-step budget, evaluated as often; its best
                   validation weights are tested (the external baseline of the scorecard's convergence metric)

Flat and buy-and-hold are backtested once per seed on the same test range and sit in the table beside them.
For each variant: the mean test return ± its standard error over the seeds, the paired difference vs
``basic`` (same seed, same market) with the standard error of the paired differences, and the verdict
**match** when that mean difference is ≥ −1 SE; plus the median wall time of a training run.
The same runs give the convergence comparison of the scorecard (issue 13, item 6): per run, the loop step and
wall time at which its validation return first reached half the expected-move oracle's on the same slice, and
its wall time as a ratio to the basic agent's of the same seed (the design's target: < 50 %).
Each run also records where on the test range its return came from: the log growth of each eighth of the range
(oldest first) and of each true regime of the synthetic market, with its trades (flat and buy-and-hold too);
``--table`` pairs them with basic's by seed, to tell an edge that fades with distance from training from one
that is lost in one regime.
Every demo variant of one seed reuses one preparation of the market (data, features, CNNs:
``train(prepared=...)``), so only the agents differ.

``--preset full`` runs the same comparison on the ``full`` preset: its market (the demo's planted signal with
720 days of history), its agent (the design's hyperparameters, batch 128, 16 envs) and reward (multi-factor),
``full`` (the 15,588-feature layout), ``full+norm``, ``full+dropout`` and ``full+returns`` against ``basic``
on that preset.

The budget is by default a seventh of the demo preset's (``--steps`` 2,000 loop steps × 8 envs instead of
15,000, ε annealed over the first half, six validation backtests of 30 min) on half its market
(``--tick-days`` 1 instead of 2: a 4.8 h test range): the full budget does not fit a grid of 18 runs on a
shared 2-core machine.

``--eval-minutes`` sets the length of the validation backtests (default 30: the first minutes of the validation
selection window), which the checkpoint choice and the convergence curve read. On the demo market the first
30 minutes are the validation range's weakest stretch (the expected-move oracle makes +3.5 % on them, against
+15 % on the first hour and +38 % on the first two), so no learner reaches the convergence target there
within the demo budget; with 120 the basic agent does. Every finished run is appended to ``--out`` (JSON
lines), so an interrupted grid continues where it stopped (``--out`` of the earlier call) and several
processes can share the seeds (``--seeds 0 1``, ``--seeds 2``) before ``--table`` prints the combined table.

    python -m benchmarks.bench_rich_state                              # 3 seeds × 6 variants
    python -m benchmarks.bench_rich_state --quick                      # plumbing check, not a result
    python -m benchmarks.bench_rich_state --preset full --variants basic demo demo+norm --steps 15000 --tick-days 2
    python -m benchmarks.bench_rich_state --variants basic demo demo+dropout sb3 --steps 15000 --tick-days 2 \
        --eval-minutes 120                                             # the README's convergence table
    python -m benchmarks.bench_rich_state --table rich_state.jsonl     # the table of finished runs
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import torch

from benchmarks._sb3 import greedy, learn_evaluated, sb3_dqn
from rltrade.config import Config
from rltrade.env.prices import PeriodData
from rltrade.training.backtest import BacktestResult, backtest_actions, backtest_policy
from rltrade.training.baselines import buy_and_hold_actions, flat_actions
from rltrade.training.bundle import load_learner
from rltrade.training.evaluate import backtest_learner, validation_targets
from rltrade.training.loop import train
from rltrade.training.pipeline import Prepared, prepare
from rltrade.training.presets import deep_merge, load_with_preset
from rltrade.training.regimes import regime_name, true_regime_labels
from rltrade.training.scorecard import TARGET_SHARE, first_reached, validation_curve

CAPACITY: Mapping[str, Any] = {"encoder_channels": [16, 32], "encoder_hidden": [128]}
RETURNS: Mapping[str, Any] = {"returns": True}
RECENT: Mapping[str, Any] = {"encoder_recent_rows": 10}
RECENT30: Mapping[str, Any] = {"encoder_recent_rows": 30}
WIDE: Mapping[str, Any] = {"encoder_channels": [32, 64], "encoder_hidden": [256, 256]}
"""Twice the widths of the config's default encoder (the ``full`` preset's): capacity on ``full``."""
NORM_DROPOUT: Mapping[str, Any] = {"block_norm": True, "block_dropout": 0.2}
"""The ``full`` preset's two block options."""
PLAIN_AGENT: Mapping[str, Any] = {
    "block_norm": False,
    "block_dropout": 0.0,
    "encoder_recent_rows": 0,
    "encoder_recent_diff": False,
}
"""The agent options every variant starts from (the variant's own overrides go on top)."""
EVAL_STEPS = 1_800
"""Default length of the validation backtests: 30 min of the 1 s clock (``--eval-minutes``)."""


class Variant(NamedTuple):
    """A variant: its state layout (``demo`` stands for the preset's own rich layout) and its overrides."""

    layout: str
    agent: Mapping[str, Any] = MappingProxyType({})
    layout_options: Mapping[str, Any] = MappingProxyType({})
    """``features.layout`` options besides its name."""


VARIANTS: Mapping[str, Variant] = {
    "basic": Variant("basic"),
    "demo": Variant("demo"),
    "demo+norm": Variant("demo", {"block_norm": True}),
    "demo+capacity": Variant("demo", CAPACITY),
    "demo+dropout": Variant("demo", {"block_dropout": 0.2}),
    "demo+all": Variant("demo", {**NORM_DROPOUT, **CAPACITY}),
    "demo+returns": Variant("demo", layout_options=RETURNS),
    "demo+norm+returns": Variant("demo", {"block_norm": True}, RETURNS),
    "demo+norm+dropout": Variant("demo", NORM_DROPOUT),
    "demo+recent": Variant("demo", RECENT),
    "demo+norm+dropout+recent": Variant("demo", {**NORM_DROPOUT, **RECENT}),
    "demo+dropout+recent": Variant("demo", {"block_dropout": 0.2, **RECENT}),
    "demo+norm+dropout+recent30": Variant("demo", {**NORM_DROPOUT, **RECENT30}),
    "demo+norm+dropout+recent30diff": Variant("demo", {**NORM_DROPOUT, **RECENT30, "encoder_recent_diff": True}),
    "demo+norm+dropout+recent30+returns": Variant("demo", {**NORM_DROPOUT, **RECENT30}, RETURNS),
    "demo+norm+dropout+recent30+wide": Variant("demo", {**NORM_DROPOUT, **RECENT30, **WIDE}),
    "sb3": Variant("demo"),
}
"""Variant name → its layout and overrides on top of the preset."""
BASELINES: tuple[str, ...] = ("flat", "buy_and_hold")
"""Policies backtested once per seed on the same test range, beside the variants."""


def budget(steps: int, tick_days: float, eval_steps: int = EVAL_STEPS) -> dict[str, Any]:
    """The demo preset's schedule scaled to ``steps`` loop steps on ``tick_days`` of trades.

    ε falls over the first half; six validation backtests of ``eval_steps`` steps each (the first ones of the
    validation selection window) choose the checkpoint and draw the convergence curve (the demo preset: every
    2,500 of its 15,000 steps).
    """
    every = max(steps // 6, 1)
    return {
        "data": {"synthetic": {"tick_days": tick_days}},
        "agent": {"epsilon_steps": max(steps // 2, 1), "beta_steps": steps},
        "train": {"total_steps": steps, "eval_every": every, "checkpoint_every": every, "eval_max_steps": eval_steps},
    }


def variant_label(name: str, preset: str) -> str:
    """The variant's name on ``preset``: its rich layout is the preset's own (``demo+norm`` → ``full+norm``)."""
    return name if preset == "demo" else name.replace("demo", preset)


def variant_config(
    name: str, seed: int, steps: int, tick_days: float, preset: str = "demo", eval_steps: int = EVAL_STEPS
) -> Config:
    """``preset`` with the variant's layout and agent options, seed ``seed`` and :func:`budget`.

    The preset's own block normalisation and dropout are off unless the variant turns them on, so that each
    variant's name says what it adds (the ``full`` preset has ``block_norm``, the ``demo`` one ``block_dropout``).
    """
    v = VARIANTS[name]
    layout = {"name": preset if v.layout == "demo" else v.layout, **v.layout_options}
    agent = {**PLAIN_AGENT, **v.agent}
    variant = {"seed": seed, "features": {"layout": layout}, "agent": agent}
    return load_with_preset(None, preset, deep_merge(budget(steps, tick_days, eval_steps), variant))


def convergence_target(prepared: Prepared) -> float:
    """:data:`~rltrade.training.scorecard.TARGET_SHARE` of the expected-move oracle's return on the validation
    slice the loop backtests (the scorecard's convergence target)."""
    truth = prepared.frames.extras["signal_truth"]
    return TARGET_SHARE * float(validation_targets(prepared, truth)["validation_expected_move_oracle_return"])


def baseline_results(cfg: Config, prepared: Prepared, period: PeriodData | None = None) -> dict[str, BacktestResult]:
    """Flat's and buy-and-hold's backtests after costs on ``period`` (default: the variants' test range)."""
    period = prepared.test_period if period is None else period
    actions = {"flat": flat_actions(period), "buy_and_hold": buy_and_hold_actions(period)}
    return {name: backtest_actions(period, a, cfg.env) for name, a in actions.items()}


def baseline_returns(cfg: Config, prepared: Prepared, period: PeriodData | None = None) -> dict[str, float]:
    """Flat's and buy-and-hold's returns after costs on ``period`` (default: the variants' test range)."""
    return {name: float(r.metrics["total_return"]) for name, r in baseline_results(cfg, prepared, period).items()}


def run_variant(cfg: Config, prepared: Prepared, run_dir: Path) -> dict[str, Any]:
    """Train one variant on a shared preparation.

    Returns its best checkpoint's test return and trades, the training wall time, the convergence target
    (:data:`~rltrade.training.scorecard.TARGET_SHARE` of the expected-move oracle's return on the validation
    slice the loop backtests) and the validation curve: ``[loop step, seconds since training began, return]``.
    """
    t0 = time.perf_counter()
    train(cfg, run_dir, log=lambda _: None, prepared=prepared)
    wall = time.perf_counter() - t0
    learner = load_learner(run_dir, prepared.layout, cfg, which="best")
    result = backtest_learner(learner, prepared, prepared.test_period)
    test = result.metrics
    curve = validation_curve(run_dir / "tensorboard")
    points = [] if curve is None else [[int(s), float(w), float(v)] for s, w, v in zip(*curve, strict=True)]
    return {
        "test_return": float(test["total_return"]),
        "n_trades": float(test["n_trades"]),
        "wall_s": wall,
        "n_envs": cfg.train.n_envs,
        "target": convergence_target(prepared),
        "curve": points,
        **range_breakdown(prepared, result.equity_T),
    }


SEGMENTS = 8
"""The test range is cut into this many equal stretches of steps for :func:`range_breakdown`."""


def range_breakdown(prepared: Prepared, equity_T: np.ndarray) -> dict[str, Any]:
    """The test return's log growth per stretch of the range (oldest first) and per true regime of the market.

    ``test_log_growth_segments``: ``log(E_end / E_start)`` over each of :data:`SEGMENTS` equal stretches of
    steps; ``test_log_growth_by_regime``: the sum of the step log returns in each of the generator's regimes
    (by name; the regimes absent from the range are left out). Both add up to the whole range's log growth
    (the final liquidation's cost sits in the last stretch).
    """
    log_E = np.log(np.asarray(equity_T, dtype=np.float64))
    n = log_E.size - 1
    edges = np.linspace(0, n, SEGMENTS + 1).round().astype(np.int64)
    out: dict[str, Any] = {
        "test_log_growth_segments": [float(log_E[b] - log_E[a]) for a, b in itertools.pairwise(edges)]
    }
    truth = prepared.frames.extras.get("regimes")
    if isinstance(truth, Mapping):
        period = prepared.test_period
        labels = true_regime_labels(truth, period.time_us_T[:n])
        step = np.diff(log_E)  # the last step's growth includes the final liquidation
        out["test_log_growth_by_regime"] = {
            regime_name(int(k)): float(step[labels == k].sum()) for k in np.unique(labels)
        }
    return out


def run_sb3(cfg: Config, prepared: Prepared) -> dict[str, Any]:
    """SB3 DQN on the variant's env for ``total_steps × n_envs`` env steps, as :func:`run_variant` reports it.

    Its curve's steps are env steps / ``n_envs``, the loop steps of an rltrade run of the same budget.
    """
    val = prepared.validation_slice()
    assert val is not None, "the demo and full presets have a validation range"
    n_envs, t = cfg.train.n_envs, cfg.train
    model = sb3_dqn(cfg, prepared)
    t0 = time.perf_counter()
    curve = learn_evaluated(
        model, cfg, prepared, val, total_env_steps=t.total_steps * n_envs, every_env_steps=t.eval_every * n_envs
    )
    wall = time.perf_counter() - t0
    if curve.best_state is not None:
        model.policy.load_state_dict(curve.best_state)
    test = backtest_policy(prepared.builder, prepared.test_period, greedy(model), cfg.env).metrics
    return {
        "test_return": float(test["total_return"]),
        "n_trades": float(test["n_trades"]),
        "wall_s": wall,
        "n_envs": n_envs,
        "target": convergence_target(prepared),
        "curve": [[steps // n_envs, w, v] for w, steps, v in curve.points],
    }


def time_to_target(row: Mapping[str, Any]) -> tuple[float, int] | None:
    """(seconds, env steps) at the run's first validation backtest at or above its target; None if none was."""
    n = row["n_envs"]
    hit = first_reached([(w, step * n, v) for step, w, v in row["curve"]], row["target"], row["steps"] * n)
    return None if hit["wall_s"] is None else (hit["wall_s"], hit["env_steps"])


def print_convergence(rows: Sequence[dict[str, Any]]) -> None:
    """Per variant and seed, when the validation return first reached the target; the median ratio to basic.

    A run that never reached it within its budget counts as "> budget" (and its ratio as unknown).
    """
    rows = [r for r in rows if "curve" in r]
    if not rows:
        return
    basic = {r["seed"]: time_to_target(r) for r in rows if r["variant"] == "basic"}
    w = _name_width(rows)
    print(f"\nconvergence: validation return ≥ {TARGET_SHARE:.0%} of the expected-move oracle's on the same slice")
    print(f"{'variant':<{w}} {'seed':>4} {'target':>8} {'reached at':>26} {'wall × basic':>13}")
    for r in sorted(rows, key=lambda r: (_order(r["variant"]), r["seed"])):
        hit, ref = time_to_target(r), basic.get(r["seed"])
        budget = r["steps"] * r["n_envs"]
        when = f"{hit[0]:.0f} s / {hit[1]:,} env steps" if hit else f"> budget ({budget:,})"
        ratio = f"{hit[0] / ref[0]:.2f}×" if hit and ref else "—"
        print(f"{r['variant']:<{w}} {r['seed']:>4} {r['target']:>+8.2%} {when:>26} {ratio:>13}")


def _key(row: Mapping[str, Any]) -> tuple[str, int, float, int]:
    """(preset, steps, tick days, validation steps) of a finished run; rows written before ``--preset`` and
    ``--eval-minutes`` existed ran on the demo with 30-minute validation backtests."""
    return (row.get("preset", "demo"), row["steps"], row["tick_days"], row.get("eval_steps", EVAL_STEPS))


def read_rows(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The finished runs recorded in ``paths`` (JSON lines; missing files count as empty).

    A run recorded more than once (the baselines of a seed that two processes shared) counts once: its last row.
    """
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for path in paths:
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    rows[(row["variant"], row["seed"], *_key(row))] = row
    return list(rows.values())


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (sample standard deviation / √n; NaN for fewer than 2 values)."""
    m = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return m, se


def table(rows: Sequence[dict[str, Any]], reference: str = "basic") -> list[dict[str, Any]]:
    """Per variant: mean test return ± SE, the paired difference vs ``reference`` ± SE, match, median wall.

    Only seeds the variant and the reference both finished are paired; match is ``diff ≥ −SE(diff)``.
    """
    by: dict[str, dict[int, dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["variant"], {})[int(r["seed"])] = r
    ref = by.get(reference, {})
    out: list[dict[str, Any]] = []
    for name in sorted(by, key=_order):
        runs = by[name]
        mean, se = mean_se([r["test_return"] for r in runs.values()])
        seeds = sorted(set(runs) & set(ref))
        line: dict[str, Any] = {
            "variant": name,
            "seeds": sorted(runs),
            "mean": mean,
            "se": se,
            "wall_s": statistics.median(r.get("wall_s", 0.0) for r in runs.values()),
        }
        if name != reference and seeds:
            diff, diff_se = mean_se([runs[s]["test_return"] - ref[s]["test_return"] for s in seeds])
            match = None if math.isnan(diff_se) else bool(diff >= -diff_se)  # one seed: no verdict
            line |= {"paired_seeds": seeds, "diff": diff, "diff_se": diff_se, "match": match}
        out.append(line)
    return out


def print_breakdown(rows: Sequence[dict[str, Any]], reference: str = "basic") -> None:
    """Where on the test range each variant gains or loses against ``reference``: paired log-growth differences.

    Per stretch of the range (:func:`range_breakdown`, oldest first) and per true regime: the reference's mean
    log growth and, per variant and baseline, the mean paired difference ± its SE over the seeds both finished.
    A gap that grows from the first stretches to the last is an edge that fades with distance from training.
    """
    by: dict[str, dict[int, dict[str, Any]]] = {}
    for r in rows:
        if "test_log_growth_segments" in r:
            by.setdefault(r["variant"], {})[int(r["seed"])] = r
    ref = by.pop(reference, {})
    if not ref or not by:
        return
    w = _name_width(rows)

    def paired(title: str, labels: Sequence[str], values: Callable[[Mapping[str, Any]], Sequence[float]]) -> None:
        print(f"{title}: {reference} mean; variant − {reference} ± SE")
        print(f"  {'':<{w}} " + " ".join(f"{label:>15}" for label in labels))
        means = [statistics.fmean(values(r)[k] for r in ref.values()) for k in range(len(labels))]
        print(f"  {reference:<{w}} " + " ".join(f"{m:>+15.3f}" for m in means))
        for name in sorted(by, key=_order):
            seeds = sorted(set(by[name]) & set(ref))
            cells = [mean_se([values(by[name][s])[k] - values(ref[s])[k] for s in seeds]) for k in range(len(labels))]
            print(f"  {name:<{w}} " + " ".join(f"{f'{m:+.3f} ± {se:.3f}':>15}" for m, se in cells))

    segments = len(next(iter(ref.values()))["test_log_growth_segments"])
    labels = [f"{k + 1}/{segments}" for k in range(segments)]
    paired("\ntest log growth per stretch of the range, oldest first", labels, lambda r: r["test_log_growth_segments"])
    regimes = sorted({k for r in ref.values() for k in r.get("test_log_growth_by_regime", {})})
    if regimes:
        paired(
            "test log growth per true regime",
            regimes,
            lambda r: [r["test_log_growth_by_regime"].get(g, 0.0) for g in regimes],
        )
    print(f"trades on the test range and log growth per trade (mean over the paired seeds): variant vs {reference}")

    def trading(runs: Mapping[int, Mapping[str, Any]], seeds: Sequence[int]) -> tuple[float, float]:
        trades = statistics.fmean(runs[s]["n_trades"] for s in seeds)
        return trades, statistics.fmean(sum(runs[s]["test_log_growth_segments"]) / runs[s]["n_trades"] for s in seeds)

    for name in sorted(by, key=_order):
        if name in BASELINES:  # flat never trades; buy-and-hold once
            continue
        seeds = sorted(set(by[name]) & set(ref))
        (n_v, g_v), (n_r, g_r) = trading(by[name], seeds), trading(ref, seeds)
        print(f"  {name:<{w}} {n_v:>8,.0f} vs {n_r:,.0f} trades  {g_v * 1e4:+.2f} vs {g_r * 1e4:+.2f} bp per trade")


def _order(label: str) -> tuple[int, str]:
    """Table order: the :data:`VARIANTS` order whatever the preset, unknown names last."""
    names = [variant_label(v, p) for p in ("demo", "full") for v in VARIANTS]
    return (names.index(label) % len(VARIANTS) if label in names else len(VARIANTS), label)


def _name_width(rows: Sequence[Mapping[str, Any]]) -> int:
    """Width of the variant column: the longest name, at least 14."""
    return max([14, *(len(r["variant"]) for r in rows)])


def print_table(rows: Sequence[dict[str, Any]], preset: str = "demo") -> None:
    """Print :func:`table` of ``rows`` (runs on ``preset``) and, per run, the seed's test and best validation return."""
    w = _name_width(rows)
    for r in sorted(rows, key=lambda r: (_order(r["variant"]), r["seed"])):
        best = f"  best validation {max(v for _, _, v in r['curve']):+.2%}" if r.get("curve") else ""
        wall = f"  wall {r['wall_s']:.0f} s" if "wall_s" in r else ""
        print(f"  {r['variant']:<{w}} seed {r['seed']}  test {r['test_return']:+.4%}{best}{wall}")
    base = next((t for t in table(rows) if t["variant"] == "basic"), None)
    basic_wall = base["wall_s"] if base else float("nan")
    vs_rich = {t["variant"]: t for t in table(rows, reference=preset)}
    print(
        f"\n{'variant':<{w}} {'seeds':>5} {'mean test return ± SE':>22} {'paired diff vs basic ± SE':>26} "
        f"{'match?':>7} {'wall/run':>9} {'× basic':>8} {'paired diff vs ' + preset + ' ± SE':>25}"
    )
    for t in table(rows):
        diff = f"{t['diff']:+.2%} ± {t['diff_se']:.2%}" if "diff" in t else "—"
        line = f"{t['variant']:<{w}} {len(t['seeds']):>5} {t['mean']:>+12.2%} ± {t['se']:>6.2%} {diff:>26}"
        if t["variant"] in BASELINES:  # not trained: no match, no wall time
            print(line)
            continue
        match = {True: "yes", False: "no"}.get(t.get("match"), "—")
        other = vs_rich[t["variant"]]
        diff_rich = f"{other['diff']:+.2%} ± {other['diff_se']:.2%}" if "diff" in other else "—"
        print(f"{line} {match:>7} {t['wall_s']:>7.0f} s {t['wall_s'] / basic_wall:>7.2f}× {diff_rich:>25}")
    print("match: the paired difference of the means vs basic is ≥ −1 standard error (issue 13, item 5)")


def run_seed(args: argparse.Namespace, seed: int, out: Path, tmp: Path, done: set[tuple[Any, ...]]) -> None:
    """Run the variants of ``seed`` not in ``done`` (one preparation per layout), then its baselines; append to
    ``out``."""
    this = (args.preset, args.steps, args.tick_days, args.eval_steps)
    prepared: dict[str, Prepared] = {}  # by layout: the variants of one seed share a market

    def prepared_for(cfg: Config) -> Prepared:
        key = cfg.features.layout.model_dump_json()
        if key not in prepared:
            prepared[key] = prepare(cfg)
        return prepared[key]

    def record(row: dict[str, Any]) -> None:
        fields = dict(zip(("preset", "steps", "tick_days", "eval_steps"), this, strict=True))
        fields["seed"] = seed
        with out.open("a") as f:
            f.write(json.dumps({**fields, **row}) + "\n")

    for name in args.variants:
        label = variant_label(name, args.preset)
        if (label, seed, *this) in done:
            continue
        cfg = variant_config(name, seed, args.steps, args.tick_days, args.preset, args.eval_steps)
        if name == "sb3":
            result = run_sb3(cfg, prepared_for(cfg))
        else:
            result = run_variant(cfg, prepared_for(cfg), tmp / f"{label}_{seed}")
        record({"variant": label, **result})
        print(f"{label} seed {seed}: test {result['test_return']:+.4%}, {result['wall_s']:.0f} s", flush=True)
    if not all((b, seed, *this) in done for b in BASELINES):
        cfg = variant_config("basic", seed, args.steps, args.tick_days, args.preset, args.eval_steps)
        prepared_basic = prepared_for(cfg)
        for b, res in baseline_results(cfg, prepared_basic).items():
            ret = float(res.metrics["total_return"])
            record({"variant": b, "test_return": ret, **range_breakdown(prepared_basic, res.equity_T)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=["demo", "full"], default="demo", help="whose market, agent and rich layout")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--steps", type=int, default=2_000, help="loop steps per run (demo preset: 15,000)")
    ap.add_argument("--tick-days", type=float, default=1.0, help="days of trades (demo preset: 2)")
    ap.add_argument(
        "--eval-minutes", type=float, default=EVAL_STEPS / 60, help="length of each validation backtest (1 s clock)"
    )
    ap.add_argument("--out", type=Path, default=None, help="JSON lines of finished runs (default: a temporary file)")
    ap.add_argument("--table", type=Path, nargs="+", help="only print the table of these JSON-lines files")
    ap.add_argument("--quick", action="store_true", help="seed 0, basic and demo+all, 600 steps (plumbing only)")
    args = ap.parse_args()
    args.eval_steps = round(args.eval_minutes * 60)
    if not args.table and args.preset != "demo" and {"demo+capacity", "demo+all"} & set(args.variants):
        ap.error(f"the capacity variants widen the demo's encoder; the {args.preset} preset's is wider already")
    if args.quick:
        args.seeds, args.variants, args.steps, args.tick_days = [0], ["basic", "demo+all"], 600, 0.25
    if args.table:
        rows = read_rows(args.table)
        for key in sorted({_key(r) for r in rows}, key=str):
            print(f"\n{key[0]} preset, {key[1]:,} steps per run, {key[2]} tick days, {key[3] / 60:g}-min validation:")
            print_table([r for r in rows if _key(r) == key], preset=key[0])
            print_convergence([r for r in rows if _key(r) == key])
            print_breakdown([r for r in rows if _key(r) == key])
        return
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench_rich_state_") as tmp:
        out: Path = args.out if args.out is not None else Path(tmp) / "rich_state.jsonl"
        this = (args.preset, args.steps, args.tick_days, args.eval_steps)
        done = {(r["variant"], r["seed"], *_key(r)) for r in read_rows([out])}
        for seed in args.seeds:
            run_seed(args, seed, out, Path(tmp), done)
        print_table([r for r in read_rows([out]) if _key(r) == this], preset=args.preset)
        print_convergence([r for r in read_rows([out]) if _key(r) == this])
        print_breakdown([r for r in read_rows([out]) if _key(r) == this])


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
