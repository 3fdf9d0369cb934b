"""Walk-forward evaluation: the agent retrained per fold, several seeds per fold, each job a Ray task.

Fold plan (:func:`plan_folds`): the decision span of the config's market is cut into ``K + 1`` equal
chunks by :func:`rltrade.data.splits.walk_forward`; fold ``k`` fits on chunk ``k`` (rolling; chunks
``0..k`` with ``expanding``) and tests on chunk ``k + 1``::

    fold k   train ─ purge │ embargo ─ validation ─ purge │ embargo ─ test
             └──────────── chunk k (pre-test part) ─────────────┘        └─ chunk k+1 ─┘

* the validation range (checkpoint choice) is the tail of the fold's pre-test part, in the config's
  ``train : validation`` proportion; purge and embargo are the config's (``splits.purge_s / embargo_s``);
* everything fitted (feature statistics, the agent, the checkpoint choice) sees only the fold's train and
  validation ranges: the job hands the fold to :func:`rltrade.training.loop.train`, then re-checks the
  fitted ranges its run bundle records and refuses to report a fold whose fitted ranges touch its test range;
* features are causal (a state at ``t`` reads only data up to ``t``), so no state inside the fitted ranges
  reads the test range.

A job (:func:`run_fold_job`) is a pure function of ``(config, fold, seed)``: it trains into its own run
folder with ``seed = cfg.seed + s`` and one torch thread (the run makes its do-no-harm selection,
:mod:`rltrade.training.confirmation`, kept in the row as ``selection``), then backtests the chosen
checkpoint (``best.pt``) on the fold's test range beside the baselines
(:func:`rltrade.training.evaluate.evaluate_run`). A job whose run folder already holds the same run resumes
it (a crashed walk-forward restarts where it stopped).
:func:`run_jobs` submits jobs as Ray tasks of one CPU each (the cluster at ``ray_address``, else a local
Ray) and gathers them as they finish; :func:`run_walkforward` writes ``walkforward.json``: one row per job,
the spread over seeds (mean, sample std, min, max of test return and Sharpe) per fold and overall, and the
``verdict`` (:mod:`rltrade.training.verdict`): the agent beside flat, buy-and-hold (and the supervised
baseline when evaluated), the seed ensemble (:func:`ensemble_returns`) and the policy selected per fold
(among the seeds' selected policies, flat and buy-and-hold, on validation then confirmation) in every fold,
with bootstrap Sharpe intervals per fold, over the concatenated test returns, and per regime. ``rltrade results`` writes
``docs/RESULTS.md`` from it.

On a multi-machine cluster every worker needs rltrade installed, the data source reachable (the synthetic
market is generated in each worker; a store must be on shared storage) and ``out_dir`` on shared storage
for the run folders; the metrics themselves come back through Ray.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from rltrade.config import ONE_THREAD, Config, describe_differences, result_differences
from rltrade.data.atomic import write_json_atomic
from rltrade.data.market import MarketFrames, load_market
from rltrade.data.splits import Fold, TimeRange, ensure_disjoint, walk_forward
from rltrade.training.backtest import backtest_policy
from rltrade.training.bundle import load_learner, open_bundle
from rltrade.training.confirmation import read_selection
from rltrade.training.evaluate import evaluate_run, run_config
from rltrade.training.loop import train
from rltrade.training.metrics import simple_returns, steps_per_year
from rltrade.training.pipeline import decision_span, prepare
from rltrade.training.presets import deep_merge
from rltrade.training.verdict import summarise

JobProgress = Callable[[int, int, str], None]
"""``progress(jobs done, jobs total, what just finished)``."""

SPREAD_METRICS: tuple[str, ...] = ("test_return", "sharpe")
"""Metrics whose spread over seeds is reported."""


class WalkForwardError(ValueError):
    """A walk-forward or ablation cannot run as asked (the message says why and what to do)."""


@dataclass(frozen=True)
class Job:
    """One independent training job: ``cfg`` trained on ``fold`` with ``seed`` into ``out_dir/<name>``."""

    cfg: dict[str, Any]
    fold: Fold
    seed: int
    out_dir: Path
    label: str = ""
    """What progress reports call the job (default: its folder name)."""

    @property
    def name(self) -> str:
        """The job's folder name, ``fold<k>_seed<s>``."""
        return job_name(self.fold.index, self.seed)

    @property
    def what(self) -> str:
        """What progress reports call the job: its label, else its name."""
        return self.label or self.name


@dataclass(frozen=True)
class WalkForwardResult:
    """What a walk-forward wrote: the ``walkforward.json`` path, the folds and one row per successful job."""

    path: Path
    """The ``walkforward.json`` written."""
    folds: list[Fold]
    rows: list[dict[str, Any]]
    """One row per successful job (see :func:`run_fold_job`)."""
    failed: list[dict[str, Any]]
    """``{"fold", "seed", "error"}`` per job that raised."""
    aggregate: dict[str, Any]
    verdict: dict[str, Any] | None = None
    """:func:`rltrade.training.verdict.summarise` of the rows (None when no job succeeded)."""


def job_name(fold_index: int, seed: int) -> str:
    """Return the folder name of the job of fold ``fold_index`` and ``seed``."""
    return f"fold{fold_index}_seed{seed}"


def fold_to_dict(fold: Fold) -> dict[str, Any]:
    """Return the fold's index and ranges as a JSON-ready dict."""
    return {
        "index": fold.index,
        "train": fold.train.to_dict(),
        "validation": None if fold.validation is None else fold.validation.to_dict(),
        "test": fold.test.to_dict(),
    }


def plan_folds(cfg: Config, span: TimeRange, n_folds: int, *, expanding: bool = False) -> list[Fold]:
    """Cut the ``n_folds`` walk-forward folds over ``span`` with the config's purge, embargo and proportions."""
    s = cfg.splits
    return walk_forward(
        span,
        n_folds,
        purge_us=s.purge_us,
        embargo_us=s.embargo_us,
        expanding=expanding,
        validation_fraction=s.validation / (s.train + s.validation),
        step_us=cfg.env.step.us,
    )


def fold_plan(cfg: Config, n_folds: int, *, frames: MarketFrames | None = None, expanding: bool = False) -> list[Fold]:
    """:func:`plan_folds` over the decision span of the config's market (loaded unless given)."""
    frames = frames if frames is not None else load_market(cfg.data)
    return plan_folds(cfg, decision_span(frames, cfg), n_folds, expanding=expanding)


def weights_fingerprint(checkpoint: Path) -> str:
    """SHA-256 of the online network's weights in ``checkpoint`` (names and bytes, in name order)."""
    # map_location: a checkpoint written on a GPU is fingerprinted on a CPU-only machine too.
    online = torch.load(checkpoint, map_location="cpu", weights_only=True)["learner"]["online"]
    h = hashlib.sha256()
    for name in sorted(online):
        h.update(name.encode())
        h.update(online[name].detach().cpu().numpy().tobytes())
    return h.hexdigest()


def _same_ranges(a: Fold, b: Fold) -> bool:
    return (a.train, a.validation, a.test) == (b.train, b.validation, b.test)


def run_fold_job(cfg_dict: dict[str, Any], fold: Fold, seed: int, out_dir: str | Path) -> dict[str, Any]:
    """Train ``cfg_dict`` on ``fold``'s train / validation ranges with ``seed``; backtest on its test range.

    Pure apart from the run folder ``out_dir/fold<k>_seed<seed>`` it writes (resumed when it already holds
    this very run). Returns one row: the ranges, every fitted range the bundle records, training counters,
    the agent's test metrics (``test_return`` and ``sharpe`` at the top), each baseline's return and Sharpe
    on the same range, and a fingerprint of the evaluated weights.
    """
    torch.set_num_threads(1)  # one job per core: results must not depend on how many share a machine
    cfg = Config.model_validate(deep_merge(cfg_dict, {"seed": seed, **ONE_THREAD}))
    run_dir = Path(out_dir) / job_name(fold.index, seed)
    resume = (run_dir / "manifest.json").exists()
    if resume:
        bundle = open_bundle(run_dir)
        differ = result_differences(bundle.config, cfg)
        if differ or not _same_ranges(bundle.fold(), fold):
            what = f"its config differs in {describe_differences(differ)}" if differ else "its ranges differ"
            raise WalkForwardError(f"{run_dir} holds a different run ({what}); use another output folder")
    result = train(cfg, run_dir, splits=None if resume else fold, resume=resume, log=lambda _: None)
    bundle = open_bundle(run_dir)
    fitted = bundle.fitted_ranges() + bundle.feature_stats.fitted_ranges()
    ensure_disjoint(fold.test, fitted, what=f"walk-forward job {run_dir.name}")
    metrics = evaluate_run(run_dir, period=fold.test)
    agent = metrics["agent"]
    best = run_dir / "checkpoints" / "best.pt"
    evaluated = best if best.exists() else run_dir / "checkpoints" / "last.pt"
    return {
        "name": run_dir.name,
        "fold": fold.index,
        "seed": seed,
        "run_dir": str(run_dir),
        **{k: v for k, v in fold_to_dict(fold).items() if k != "index"},
        "fitted_ranges": [r.to_dict() for r in fitted],
        "steps": result.steps,
        "updates": result.updates,
        "wall_s": result.wall_s,
        "best_validation": None
        if result.best_validation is None
        else {"step": result.best_validation["step"], "total_return": result.best_validation["total_return"]},
        "evaluated_checkpoint": evaluated.name,
        "weights_sha256": weights_fingerprint(evaluated),
        "test_return": float(agent["total_return"]),
        "sharpe": float(agent["sharpe"]),
        "selection": _selection_summary(read_selection(run_dir)),
        "agent": agent,
        "baselines": {
            name: {"test_return": float(m["total_return"]), "sharpe": float(m["sharpe"])}
            for name, m in metrics.items()
            if name != "agent"
        },
    }


def _selection_summary(sel: dict[str, Any] | None) -> dict[str, Any] | None:
    """Keep what a walk-forward row needs of a run's ``selection.json``."""
    if sel is None:
        return None
    return {k: sel.get(k) for k in ("selected", "candidate", "status", "label")}


def selection_counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How many of ``rows`` selected each policy (``unknown``: a run without a selection)."""
    out: dict[str, int] = {}
    for r in rows:
        sel = r.get("selection")
        name = str(sel["selected"]) if isinstance(sel, dict) else "unknown"
        out[name] = out.get(name, 0) + 1
    return out


def _error_text(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)  # a RayTaskError wraps what the job raised
    inner = cause if isinstance(cause, BaseException) else exc
    return f"{type(inner).__name__}: {inner}"


def run_jobs(
    jobs: Sequence[Job],
    *,
    ray_address: str | None = None,
    num_cpus: int | None = None,
    progress: JobProgress | None = None,
) -> list[dict[str, Any]]:
    """Run ``jobs`` as Ray tasks (one CPU each) and return their rows in job order.

    Uses the Ray already initialised in this process if there is one, else connects to ``ray_address``
    or starts a local Ray with ``num_cpus`` (shut down again at the end). A job that raises yields
    ``{"fold", "seed", "name", "error"}`` instead of a row; the others still run.
    """
    import ray

    started = not ray.is_initialized()
    if started:
        if ray_address is not None:
            ray.init(address=ray_address)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False)
    try:
        task = ray.remote(num_cpus=1)(run_fold_job)
        index = {task.remote(j.cfg, j.fold, j.seed, str(j.out_dir)): i for i, j in enumerate(jobs)}
        rows: list[dict[str, Any]] = [{} for _ in jobs]
        pending = list(index)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                i, job = index[ref], jobs[index[ref]]
                try:
                    rows[i] = ray.get(ref)
                    what = f"{job.what}: test return {rows[i]['test_return']:+.3%}"
                except ray.exceptions.RayError as exc:
                    rows[i] = {"fold": job.fold.index, "seed": job.seed, "name": job.name, "error": _error_text(exc)}
                    what = f"{job.what}: failed"
                if progress is not None:
                    progress(len(jobs) - len(pending), len(jobs), what)
        return rows
    finally:
        if started:
            ray.shutdown()


def spread(values: Sequence[float]) -> dict[str, float | int | None]:
    """``n``, mean, sample standard deviation (ddof 1; None below 2 values), min and max of ``values``."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    return {
        "n": int(a.size),
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if a.size > 1 else None,
        "min": float(a.min()),
        "max": float(a.max()),
    }


def aggregate(rows: Sequence[dict[str, Any]], folds: Sequence[Fold]) -> dict[str, Any]:
    """Summarise the spread of the agent's test return and Sharpe over seeds, per fold and over every job.

    The baselines' means per fold stand beside them.
    """
    per_fold = []
    for fold in folds:
        mine = [r for r in rows if r["fold"] == fold.index]
        baselines = sorted({name for r in mine for name in r["baselines"]})
        per_fold.append(
            {
                "fold": fold.index,
                "test": fold.test.to_dict(),
                "seeds": [r["seed"] for r in mine],
                "selected": selection_counts(mine),
                **{m: spread([r[m] for r in mine]) for m in SPREAD_METRICS},
                "baselines": {
                    name: {m: float(np.mean([r["baselines"][name][m] for r in mine])) for m in SPREAD_METRICS}
                    for name in baselines
                },
            }
        )
    overall = {m: spread([r[m] for r in rows]) for m in SPREAD_METRICS}
    return {"per_fold": per_fold, "overall": {"jobs": len(rows), "selected": selection_counts(rows), **overall}}


def ensemble_returns(run_dirs: Sequence[Path]) -> npt.NDArray[np.float64] | None:
    """Per-step test returns of the seed ensemble of one fold: greedy on the Q-values averaged over the seeds.

    Every member reads the first member's states: the members share the fold's ranges and their feature
    statistics are fitted on the same train range, so the states are the same. A run with a CNN stage has
    seed-dependent CNN features: there is no common state, and the fold has no ensemble row (None).
    """
    bundles = [open_bundle(d) for d in run_dirs]
    if any("cnn" in b.manifest for b in bundles):
        return None
    cfg = run_config(bundles[0])
    prep = prepare(cfg, stats=bundles[0].feature_stats, splits=bundles[0].fold(), cnn_dir=bundles[0].root / "cnn")
    learners = [load_learner(b.root, prep.layout, run_config(b), which="best") for b in bundles]

    def policy(obs: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
        q = np.mean([learner.greedy_q(obs) for learner in learners], axis=0)
        return np.asarray(q.argmax(axis=1), dtype=np.int64)

    result = backtest_policy(prep.builder, prep.test_period, policy, cfg.env)
    return simple_returns(result.equity_T)


def run_walkforward(
    cfg: Config,
    out_dir: Path,
    *,
    folds: int,
    seeds: int,
    ray_address: str | None = None,
    num_cpus: int | None = None,
    progress: JobProgress | None = None,
    expanding: bool = False,
) -> WalkForwardResult:
    """Train and test ``folds`` walk-forward folds × ``seeds`` seeds as parallel jobs.

    Writes ``out_dir/walkforward.json`` (atomically) and returns what it holds.
    """
    if seeds < 1:
        raise WalkForwardError(f"--seeds must be at least 1, got {seeds}")
    plan = fold_plan(cfg, folds, expanding=expanding)
    cfg_dict = cfg.model_dump(mode="json")
    seed_list = [cfg.seed + s for s in range(seeds)]
    jobs = [Job(cfg_dict, fold, seed, out_dir / "runs") for fold in plan for seed in seed_list]
    results = run_jobs(jobs, ray_address=ray_address, num_cpus=num_cpus, progress=progress)
    rows = [r for r in results if "error" not in r]
    failed = [r for r in results if "error" in r]
    summary = aggregate(rows, plan)
    judged = (
        summarise(
            rows,
            steps_per_year(cfg.env.step.us),
            ensemble=ensemble_returns,
            confirm_resamples=cfg.selection.n_resamples,
            confirm_level=cfg.selection.level,
        )
        if rows
        else None
    )
    path = out_dir / "walkforward.json"
    write_json_atomic(
        path,
        {
            "format": "rltrade.walkforward",
            "version": 1,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "expanding": expanding,
            "seeds": seed_list,
            "folds": [fold_to_dict(f) for f in plan],
            "config": cfg_dict,
            "jobs": rows,
            "failed": failed,
            "aggregate": summary,
            "verdict": judged,
        },
    )
    return WalkForwardResult(path, plan, rows, failed, summary, judged)
