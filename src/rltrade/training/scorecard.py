"""The scorecard: the original design's five success metrics (SPEC §3), each PASS / FAIL / NOT MEASURED.

It reads a run folder's artefacts only and never trains. The evaluation outputs it needs
(``eval/metrics.json``, ``eval/regimes.json``, ``eval/agent_steps.parquet``,
``eval/feature_coverage.parquet``) are read when present; when one is missing the saved best checkpoint
is backtested first (:func:`rltrade.training.evaluate.evaluate_bundle`, which writes them) and the
scorecard says so (``evaluation``). Each run is scored against its own layout. Definitions:

* **coverage** (design: "> 95 % of the required specification"): the share of the layout's market features
  (every block but the flags) that are *covered* on the evaluated period: unmasked (their block's
  ``has_<block>`` flag set) on ≥ 95 % of the evaluated steps, and moving: standard deviation over those
  steps above ``1e-6 · max(|mean|, 1e-3)``, a relative tolerance that only a feature stuck at one value
  (up to float rounding) fails: a block whose bars never close in the period, a dead unit, a masked row
  written as 0. Small genuine variation (a 1 s return of a few bp) counts. PASS above 95 %.
  Per block: features, covered, and the share of each reason. Source: ``eval/feature_coverage.parquet``.
* **convergence** (design: "< 50 % of current", current being the ~100-feature state): wall time of the
  agent's training (from its TensorBoard log's first event, i.e. after data, features and CNNs) and env
  steps until the validation return (``validation/total_return``, the loop's backtest of the first
  ``train.eval_max_steps`` validation steps) first reaches the target: on a synthetic market with a planted
  signal, 50 % of the expected-move oracle's return on that range (``eval/metrics.json`` ``targets``).
  A learner that never gets there is "> budget". PASS when the agent's wall time is below 50 % of the
  basic-layout agent's and of stable-baselines3 DQN's (same budget, 50k buffer, ``optimize_memory_usage``).
  The comparison learners are read from ``RUN_DIR/convergence.json`` (schema below) or, for the basic
  agent, a run folder passed as ``basic_run``; without them NOT MEASURED (the agent's own figure is shown).
  On real data there is no fixed target: NOT MEASURED.
* **accuracy** (design: "> 65 %"): the agent's direction accuracy while in the market on the test range
  (steps in the market whose fill-to-fill move is not zero; right side = position sign equals move sign),
  with a stationary block-bootstrap 95 % interval (Politis–White block length, 1000 resamples, seed 0),
  beside the base rate of up moves (share of non-zero test moves that are up) and the time in market,
  plus each CNN's pooled out-of-sample direction accuracy (``cnn/metrics.json``) and, measured the same way
  on the same range (``eval/metrics.json``), the oracles' and the supervised baseline's: on a planted signal
  the expected-move oracle, which knows the expected moves exactly, shows what accuracy the signal allows.
  PASS above 65 %. On real
  data a figure above 65 % also raises a **leak alarm** (SPEC §3: a leakage alarm until proven otherwise).
* **regimes** (design: "consistent across 3+ regimes"): on the test range's regime labels (the true ones
  of a synthetic market, else the classifier's: ``eval/regimes.json``), PASS when at least 3 regimes each
  hold ≥ 10 % of the steps and the agent's annualised Sharpe is at least buy-and-hold's in every one of them.
* **uptime** (design: "> 99.5 % with CNN integration"): ``RUN_DIR/live/soak_summary.json`` when present,
  else the latest live session's ``RUN_DIR/live/report.json``; it counts only with the CNNs on (the soak
  summary's ``cnn_enabled``; a live session runs the run's CNNs, so a session of a run whose CNN stage
  served at least one timeframe). PASS above 99.5 %. NOT MEASURED otherwise.

``RUN_DIR/convergence.json`` (optional, written by ``python -m benchmarks.bench_convergence --run RUN_DIR``)::

    {"target": float, "learners": {"basic": {"wall_s": float | null, "env_steps": int | null,
                                             "budget_env_steps": int, "evaluations": int,
                                             "last_wall_s": float | null}, "sb3_dqn": {...}}}

(``wall_s`` / ``env_steps`` null: never reached within the budget. ``last_wall_s``, the wall time at the
learner's last validation backtest, bounds the ratio to a learner that never got there: the agent's time
over it; files written before it was recorded lack it, and the figure then says only who got there.)

``RUN_DIR/live/soak_summary.json`` (written by a soak; only ``uptime`` and ``cnn_enabled`` are read)::

    {"uptime": float, "cnn_enabled": bool, "alive_s": float, "degraded_s": float, "decisions": int, ...}

Written: ``RUN_DIR/scorecard.json`` (``run``, ``layout``, ``market``, ``evaluation``, ``metrics``: a list of
``name``, ``status``, ``figure``, ``target``, ``definition``, ``source``, ``details``, and ``alarm`` when raised).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from rltrade.data.atomic import write_json_atomic
from rltrade.training.bootstrap import optimal_block_length, stationary_bootstrap_indices
from rltrade.training.bundle import BundleError, RunBundle, open_bundle
from rltrade.training.coverage import COVERAGE_FILE

PASS: Final = "PASS"
FAIL: Final = "FAIL"
NOT_MEASURED: Final = "NOT MEASURED"
SCORECARD_FILE: Final = "scorecard.json"
EVAL_FILES: Final = ("metrics.json", "regimes.json", "agent_steps.parquet", COVERAGE_FILE)

COVERAGE_TARGET: Final = 0.95
UNMASKED_SHARE: Final = 0.95
STD_REL_TOL: Final = 1e-6
STD_SCALE_FLOOR: Final = 1e-3
CONVERGENCE_RATIO: Final = 0.5
TARGET_SHARE: Final = 0.5
ACCURACY_TARGET: Final = 0.65
ACCURACY_REFERENCES: Final[dict[str, str]] = {
    "expected_move_oracle": "expected-move oracle",
    "oracle": "perfect-foresight oracle",
    "supervised": "supervised baseline",
}
"""Policies of ``eval/metrics.json`` whose direction accuracy (the same measure) the accuracy figure shows."""
REGIME_MIN_SHARE: Final = 0.10
MIN_REGIMES: Final = 3
UPTIME_TARGET: Final = 0.995
N_RESAMPLES: Final = 1000
CI_LEVEL: Final = 0.95


@dataclass(frozen=True)
class Score:
    """One success metric: its verdict, headline figure, the design's target and how it was measured."""

    name: str
    status: str
    figure: str
    target: str
    definition: str
    source: str
    details: dict[str, Any] = field(default_factory=dict)
    alarm: str | None = None


@dataclass(frozen=True)
class Scorecard:
    """The scores of one run (module docstring): what was run, on which market, and each metric's verdict."""

    run: str
    layout: str
    layout_size: int
    market: str
    """``synthetic`` or ``real`` (read from a store)."""
    evaluation: str
    """Where the evaluation outputs came from: the saved ones, or a backtest run now."""
    metrics: tuple[Score, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return the scorecard as a JSON-ready dict."""
        out = asdict(self)
        out["metrics"] = [asdict(m) for m in self.metrics]
        return out


def score_run(
    run_dir: Path,
    *,
    basic_run: Path | None = None,
    evaluate: Callable[[Path], object] | None = None,
    write: bool = True,
) -> Scorecard:
    """Score ``run_dir`` (module docstring).

    ``evaluate`` backtests it when its evaluation outputs are missing (default
    :func:`rltrade.training.evaluate.evaluate_bundle`).
    """
    bundle = open_bundle(run_dir)
    eval_dir = run_dir / "eval"
    missing = [f for f in EVAL_FILES if not (eval_dir / f).is_file()]
    if missing:
        if evaluate is None:
            from rltrade.training.evaluate import evaluate_bundle

            evaluate = evaluate_bundle
        evaluate(run_dir)
        evaluation = f"backtest of checkpoints/best.pt on the test range run now (eval/ lacked {', '.join(missing)})"
    else:
        evaluation = "saved evaluation outputs in eval/ (no backtest run)"
    cfg = bundle.config
    real = cfg.data.source != "synthetic"
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    scores = (
        coverage_score(pl.read_parquet(eval_dir / COVERAGE_FILE)),
        convergence_score(bundle, metrics, real=real, basic_run=basic_run),
        accuracy_score(metrics, pl.read_parquet(eval_dir / "agent_steps.parquet"), run_dir / "cnn", real=real),
        regimes_score(json.loads((eval_dir / "regimes.json").read_text())),
        uptime_score(run_dir / "live", cnn_served=_cnn_served(bundle)),
    )
    card = Scorecard(
        run=str(run_dir),
        layout=str(bundle.manifest["layout"]["name"]),
        layout_size=int(bundle.manifest["layout"]["size"]),
        market="real" if real else "synthetic",
        evaluation=evaluation,
        metrics=scores,
    )
    if write:
        write_json_atomic(run_dir / SCORECARD_FILE, card.to_dict())
    return card


def _pct(x: float) -> str:
    return f"{x:.1%}"


def coverage_score(table: pl.DataFrame) -> Score:
    """Coverage from the per-feature table of :mod:`rltrade.training.coverage`."""
    definition = (
        f"share of the layout's market features unmasked (block flag set) on ≥ {UNMASKED_SHARE:.0%} of the evaluated "
        f"steps whose std over those steps exceeds {STD_REL_TOL:g} · max(|mean|, {STD_SCALE_FLOOR:g})"
    )
    source = f"eval/{COVERAGE_FILE}"
    if table.height == 0:
        return Score("coverage", FAIL, "no features", f"> {COVERAGE_TARGET:.0%}", definition, source)
    t = table.with_columns(
        unmasked=pl.col("unmasked_share") >= UNMASKED_SHARE,
        moving=pl.col("std") > STD_REL_TOL * pl.max_horizontal(pl.col("mean").abs(), pl.lit(STD_SCALE_FLOOR)),
    ).with_columns(covered=pl.col("unmasked") & pl.col("moving"))
    per_block = (
        t.group_by("block", maintain_order=True)
        .agg(
            features=pl.len(),
            covered=pl.col("covered").sum(),
            masked=(~pl.col("unmasked")).sum(),
            constant=(pl.col("unmasked") & ~pl.col("moving")).sum(),
            mean_unmasked_share=pl.col("unmasked_share").mean(),
        )
        .to_dicts()
    )
    share = float(t["covered"].mean())  # type: ignore[arg-type]
    n = t.height
    return Score(
        "coverage",
        PASS if share > COVERAGE_TARGET else FAIL,
        f"{share:.1%} of {n:,} features covered",
        f"> {COVERAGE_TARGET:.0%}",
        definition,
        source,
        {"share": share, "features": n, "steps": int(t["n_steps"][0]), "blocks": per_block},
    )


def validation_curve(log_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(loop steps, seconds since the log's first event, validation return) of a run's TensorBoard log."""
    if not log_dir.is_dir():
        return None
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    if "validation/total_return" not in acc.Tags().get("scalars", []):
        return None
    events = acc.Scalars("validation/total_return")
    t0 = acc.FirstEventTimestamp()
    steps = np.array([e.step for e in events], np.int64)
    wall = np.array([e.wall_time - t0 for e in events], np.float64)
    value = np.array([e.value for e in events], np.float64)
    order = np.argsort(steps, kind="stable")
    return steps[order], wall[order], value[order]


def _reached(bundle: RunBundle, target: float) -> dict[str, Any] | None:
    train = bundle.config.train
    return time_to_target(bundle.root / "tensorboard", target, n_envs=train.n_envs, total_steps=train.total_steps)


def time_to_target(log_dir: Path, target: float, *, n_envs: int, total_steps: int) -> dict[str, Any] | None:
    """Find when a run's validation return first reached ``target``.

    Parameters
    ----------
    log_dir
        The run's TensorBoard folder (``validation/total_return``).
    target
        The return to reach.
    n_envs, total_steps
        The run's parallel envs and loop steps: env steps are loop steps × ``n_envs``.

    Returns
    -------
    dict or None
        :func:`first_reached` of the curve; None when ``log_dir`` holds no validation curve.
    """
    curve = validation_curve(log_dir)
    if curve is None:
        return None
    steps, wall, value = curve
    points = [(float(w), int(s) * n_envs, float(v)) for s, w, v in zip(steps, wall, value, strict=True)]
    return first_reached(points, target, total_steps * n_envs)


def first_reached(points: Sequence[tuple[float, int, float]], target: float, budget: int) -> dict[str, Any]:
    """Find the first point of a validation curve of ``(wall s, env steps, return)`` at or above ``target``.

    Returns ``wall_s`` and ``env_steps`` of that point (both None when no point got there: "> budget"),
    ``budget_env_steps`` (``budget``), ``evaluations`` (the curve's points) and ``last_wall_s`` (the last
    point's wall time, None for an empty curve): a ``convergence.json`` learner.
    """
    curve = {"budget_env_steps": budget, "evaluations": len(points), "last_wall_s": points[-1][0] if points else None}
    for wall, steps, value in points:
        if value >= target:
            return {"wall_s": wall, "env_steps": steps, **curve}
    return {"wall_s": None, "env_steps": None, **curve}


def _when(r: dict[str, Any]) -> str:
    if r.get("wall_s") is None:
        return f"> budget ({r['budget_env_steps']:,} env steps)"
    return f"{r['wall_s']:.0f} s / {r['env_steps']:,} env steps"


def convergence_score(
    bundle: RunBundle, metrics: dict[str, Any], *, real: bool, basic_run: Path | None = None
) -> Score:
    """Convergence (module docstring): time to the fixed target, as a ratio to the comparison learners."""
    definition = (
        f"wall time and env steps until the validation return first reaches {TARGET_SHARE:.0%} of the expected-move "
        f"oracle's return on that range; PASS when the agent's wall time is < {CONVERGENCE_RATIO:.0%} of the "
        "basic-layout agent's and of SB3 DQN's (same budget, 50k buffer, optimize_memory_usage)"
    )
    source = "tensorboard/ validation/total_return, eval/metrics.json targets, convergence.json"
    target_text = f"< {CONVERGENCE_RATIO:.0%} of the basic-state learners' time"
    oracle = metrics.get("targets", {}).get("validation_expected_move_oracle_return")
    if real or oracle is None:
        why = "real data: no fixed target" if real else "no planted signal: no expected-move oracle target"
        return Score("convergence", NOT_MEASURED, why, target_text, definition, source)
    target = TARGET_SHARE * float(oracle)
    agent = _reached(bundle, target)
    if agent is None:
        why = "the run folder has no validation curve (tensorboard/ validation/total_return)"
        return Score("convergence", NOT_MEASURED, why, target_text, definition, source, {"target": target})
    details: dict[str, Any] = {"target": target, "expected_move_oracle_return": float(oracle), "agent": agent}
    learners: dict[str, dict[str, Any]] = {}
    extra = bundle.root / "convergence.json"
    if extra.is_file():
        learners.update(json.loads(extra.read_text()).get("learners", {}))
    if basic_run is not None:
        basic = _reached(open_bundle(basic_run), target)
        if basic is None:
            raise BundleError(f"--basic-run {basic_run} has no validation curve (tensorboard/ validation/total_return)")
        learners["basic"] = basic
    details["learners"] = learners
    head = f"agent {_when(agent)} to {target:+.2%}"
    absent = [k for k in ("basic", "sb3_dqn") if k not in learners]
    if absent:
        why = f"{head}; no comparison run for {', '.join(absent)} (convergence.json or --basic-run)"
        return Score("convergence", NOT_MEASURED, why, target_text, definition, source, details)
    ratios = {name: wall_ratio(agent, learners[name]) for name in ("basic", "sb3_dqn")}
    details["wall_ratio"] = ratios
    ok = all(r is not None and r < CONVERGENCE_RATIO for r in ratios.values())
    shown = "; ".join(f"{k} {_when(learners[k])}{_ratio_text(k, v, agent, learners[k])}" for k, v in ratios.items())
    status = PASS if ok else FAIL
    return Score("convergence", status, f"{head}; {shown}", target_text, definition, source, details)


def _ratio_text(name: str, ratio: float | None, agent: dict[str, Any], other: dict[str, Any]) -> str:
    """Show the wall-time ratio: a number, a bound when only the other never got there, or nothing."""
    if ratio is None:
        return ""
    if other.get("wall_s") is not None:
        return f" (agent/{name} wall-time ratio {ratio:.2f})"
    last = other.get("last_wall_s")
    if last is None or last <= 0.0:  # a convergence.json from before last_wall_s was recorded
        return f" (the agent got there, {name} did not)"
    bound = float(agent["wall_s"]) / float(last)
    return f" (not there after {float(last):.0f} s: agent/{name} wall-time ratio < {bound:.2f})"


def wall_ratio(agent: dict[str, Any], other: dict[str, Any]) -> float | None:
    """Divide the agent's wall time to the target by another learner's.

    Returns
    -------
    float or None
        None when the agent never got there ("> budget"); 0 when only the other learner never did (the agent
        wins that comparison; the figure shows the bound of ``last_wall_s`` instead of a number).
    """
    if agent.get("wall_s") is None:
        return None
    if other.get("wall_s") is None:
        return 0.0
    return float(agent["wall_s"]) / max(float(other["wall_s"]), 1e-9)


def _direction_ci(hits: np.ndarray) -> tuple[float, float]:
    """Stationary block-bootstrap percentile interval of the mean of ``hits``."""
    if hits.size < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(0)
    idx = stationary_bootstrap_indices(hits.size, optimal_block_length(hits), N_RESAMPLES, rng)
    means = hits[idx].mean(axis=1)
    tail = (1.0 - CI_LEVEL) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def _cnn_direction(cnn_dir: Path) -> dict[str, dict[str, float]]:
    """Each CNN's pooled out-of-sample direction accuracy and its number of directional windows (>0)."""
    path = cnn_dir / "metrics.json"
    if not path.is_file():
        return {}
    timeframes = json.loads(path.read_text()).get("timeframes", {})
    out = {}
    for tf, entry in timeframes.items():
        model = entry.get("pooled", {}).get("model", {})
        value, n = model.get("direction_accuracy"), model.get("n_directional", 0)
        if isinstance(value, int | float) and math.isfinite(value) and isinstance(n, int) and n > 0:
            out[tf] = {"direction_accuracy": float(value), "n_directional": n}
    return out


def accuracy_score(metrics: dict[str, Any], steps: pl.DataFrame, cnn_dir: Path, *, real: bool) -> Score:
    """Accuracy (module docstring) from the agent's saved steps of the test range."""
    definition = (
        "agent's direction accuracy while in the market on the test range (position sign = sign of the fill-to-fill "
        f"move, moves ≠ 0), {CI_LEVEL:.0%} stationary block-bootstrap CI; beside the up-move base rate, the time in "
        "market, the CNNs' out-of-sample direction accuracy, and the oracles' and the supervised baseline's on the "
        "same range (the same measure)"
    )
    source = "eval/agent_steps.parquet, eval/metrics.json, cnn/metrics.json"
    position = steps["position"].to_numpy()[:-1].astype(np.float64)
    move = np.diff(np.log(steps["fill_price"].to_numpy().astype(np.float64)))
    scored = (position != 0) & (move != 0)
    hits = (np.sign(position[scored]) == np.sign(move[scored])).astype(np.float64)
    nonzero = move[move != 0]
    details: dict[str, Any] = {
        "direction_steps": int(scored.sum()),
        "base_rate_up": float(np.mean(nonzero > 0)) if nonzero.size else math.nan,
        "time_in_market": float(np.mean(position != 0)) if position.size else 0.0,
        "cnn_direction_accuracy": _cnn_direction(cnn_dir),
        "agent_metrics_direction_accuracy": metrics.get("metrics", {}).get("agent", {}).get("direction_accuracy"),
        "reference_direction_accuracy": {
            name: float(m["direction_accuracy"])
            for name, m in metrics.get("metrics", {}).items()
            if name in ACCURACY_REFERENCES and m.get("direction_accuracy") is not None
        },
    }
    target = f"> {ACCURACY_TARGET:.0%}"
    if hits.size == 0:
        return Score("accuracy", FAIL, "never in the market", target, definition, source, details)
    acc = float(hits.mean())
    lo, hi = _direction_ci(hits)
    details.update(direction_accuracy=acc, ci_low=lo, ci_high=hi)
    cnn = (
        ", ".join(
            f"{tf} {v['direction_accuracy']:.1%} (n={v['n_directional']:,})"
            for tf, v in details["cnn_direction_accuracy"].items()
        )
        or "none"
    )
    references = "".join(
        f"; {ACCURACY_REFERENCES[name]} {value:.1%}"
        for name, value in sorted(details["reference_direction_accuracy"].items(), key=lambda kv: kv[0])
    )
    figure = (
        f"{acc:.1%} [{lo:.1%}, {hi:.1%}] over {hits.size:,} steps; up-move base rate {details['base_rate_up']:.1%}, "
        f"in market {details['time_in_market']:.1%}; CNNs {cnn}{references}"
    )
    alarm = None
    if real and acc > ACCURACY_TARGET:
        alarm = "leak alarm: above 65 % on real data, a leakage alarm until proven otherwise (SPEC §3); investigate"
    return Score(
        "accuracy", PASS if acc > ACCURACY_TARGET else FAIL, figure, target, definition, source, details, alarm
    )


def regimes_score(rows: list[dict[str, Any]]) -> Score:
    """Regimes (module docstring) from the per-regime rows of the evaluation."""
    sources = {str(r["source"]) for r in rows}
    label = "true" if "true" in sources else "classifier"
    definition = (
        f"test-range regimes ({label} labels) holding ≥ {REGIME_MIN_SHARE:.0%} of the steps; PASS with ≥ {MIN_REGIMES} "
        "of them and the agent's annualised Sharpe ≥ buy-and-hold's in every one"
    )
    target = f"≥ {MIN_REGIMES} regimes"
    mine = [r for r in rows if r["source"] == label and r["regime"] != "UNKNOWN"]
    by = {(str(r["policy"]), str(r["regime"])): r for r in mine}
    big = sorted(
        {str(r["regime"]) for r in mine if r["policy"] == "agent" and float(r["share_of_steps"]) >= REGIME_MIN_SHARE}
    )
    per: dict[str, dict[str, Any]] = {}
    for regime in big:
        agent, hold = by[("agent", regime)], by.get(("buy_and_hold", regime))
        per[regime] = {
            "share_of_steps": float(agent["share_of_steps"]),
            "agent_sharpe": float(agent["sharpe"]),
            "buy_and_hold_sharpe": float(hold["sharpe"]) if hold is not None else math.nan,
        }
    beats = [k for k, v in per.items() if v["agent_sharpe"] >= v["buy_and_hold_sharpe"]]
    ok = len(per) >= MIN_REGIMES and len(beats) == len(per)
    figure = f"{len(per)} regimes ≥ {REGIME_MIN_SHARE:.0%} of steps; agent Sharpe ≥ buy-and-hold's in {len(beats)}"
    details = {"labels": label, "regimes": per}
    return Score("regimes", PASS if ok else FAIL, figure, target, definition, "eval/regimes.json", details)


def _cnn_served(bundle: RunBundle) -> bool:
    cnn = bundle.manifest.get("cnn")
    if not isinstance(cnn, dict):
        return False
    return bool(set(cnn.get("timeframes", {})) - set(cnn.get("skipped", {})))


def uptime_score(live_dir: Path, *, cnn_served: bool) -> Score:
    """Score the uptime (module docstring) from the soak summary or latest live session report in ``live_dir``.

    ``cnn_served``: the run's CNN stage served at least one timeframe (its live sessions run CNNs).
    """
    definition = "share of live wall time with no stale role and the connection up, with the CNNs on"
    target = f"> {UPTIME_TARGET:.1%}"
    soak = live_dir / "soak_summary.json"
    session = live_dir / "report.json"
    if soak.is_file():
        data, source = json.loads(soak.read_text()), "live/soak_summary.json"
        cnn_on = bool(data.get("cnn_enabled", False))
    elif session.is_file():
        data, source = json.loads(session.read_text()), "live/report.json"
        cnn_on = cnn_served
    else:
        why = "no live session or soak in the run folder (live/soak_summary.json, live/report.json)"
        return Score("uptime", NOT_MEASURED, why, target, definition, "live/")
    uptime = data.get("uptime")
    if not isinstance(uptime, int | float):
        return Score("uptime", NOT_MEASURED, f"{source} holds no uptime", target, definition, source)
    details = {"uptime": float(uptime), "cnn_enabled": cnn_on, "alive_s": data.get("alive_s")}
    if "faults" in data:  # a soak's injected fault counts: a one-minute soak often meets none of the rarer ones
        details["faults"] = data["faults"]
    if not cnn_on:
        why = f"{float(uptime):.3%} measured with the CNNs off ({source}); the design asks for CNNs on"
        return Score("uptime", NOT_MEASURED, why, target, definition, source, details)
    status = PASS if uptime > UPTIME_TARGET else FAIL
    alive = data.get("alive_s")
    over = f"{alive:.0f} s" if isinstance(alive, int | float) else f"{alive} s"
    return Score("uptime", status, f"{float(uptime):.3%} over {over}", target, definition, source, details)
